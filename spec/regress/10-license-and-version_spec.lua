-- Issue 12 item 13: no LICENSE file although the rockspec said MIT, no
-- asyncstack._VERSION, and a rockspec whose source URL the README did not
-- explain. The licence text, the rockspec's licence field, the version
-- string's shape and the README's words about both must agree.

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

describe("issue 12 item 13: packaging", function()
  it("has an MIT LICENSE naming the asyncstack authors, as the rockspec says", function()
    local license = read("LICENSE")
    assert.matches("^MIT License\n", license)
    assert.matches("Copyright %(c%) %d%d%d%d the asyncstack authors\n", license)
    assert.matches("THE SOFTWARE IS PROVIDED \"AS IS\"", license, 1, true)
    local rockspec = read("asyncstack-scm-1.rockspec")
    assert.matches('license = "MIT"', rockspec, 1, true)
  end)

  it("exposes asyncstack._VERSION as 'asyncstack X.Y.Z[-suffix]', as the README says", function()
    local as = require "asyncstack"
    assert.are.equal("string", type(as._VERSION))
    assert.matches("^asyncstack %d+%.%d+%.%d+[%w%-]*$", as._VERSION)
    assert.truthy(read("README.md"):find("`asyncstack._VERSION`", 1, true))
  end)

  it("documents the rockspec's placeholder source URL in the README", function()
    local url = read("asyncstack-scm-1.rockspec"):match('url = "([^"]+)"')
    assert.truthy(url)
    assert.truthy(read("README.md"):find(url, 1, true), "README must name " .. url)
  end)
end)
