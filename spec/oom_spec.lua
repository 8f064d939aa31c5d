-- Allocation failure everywhere (issue 13, testing item 1), sampled: the
-- sweep of tools/oomtest.lua over src-test/oomprog.lua at OOMTEST_SAMPLE
-- (default 25) failure points per mode, "every" and "next", with the host
-- and module of the build under test (the directory of LUA_CPATH's first
-- entry: build/ for make test, build-asan/ under make asan). `make oomtest`
-- runs every failure point under ASan. Known defects are listed, each
-- naming its defect, in tools/oomtest-known.txt; anything else fails here.

local function build_dir()
  local cpath = os.getenv("LUA_CPATH") or "build/?.so;;"
  return cpath:match("^([^;]-)/%?%.so") or "build"
end

describe("allocation failure (sampled sweep)", function()
  it("gives a clean 'not enough memory' error at every sampled failure point #child", function()
    local host = build_dir() .. "/test/oomhost"
    local f = io.open(host)
    assert(f, host .. " is missing: `make test-helpers` builds it")
    f:close()
    local sample = tonumber(os.getenv("OOMTEST_SAMPLE")) or 25
    local p = assert(io.popen(("lua5.4 tools/oomtest.lua %s --sample %d 2>&1; echo \"status=$?\"")
      :format(host, sample)))
    local out = p:read("a")
    p:close()
    local status = tonumber(out:match("status=(%d+)%s*$"))
    assert(status == 0, out)
    assert.matches("mode every %d+ failure points tried", out)
    assert.matches("mode next  %d+ failure points tried", out)
  end)
end)
