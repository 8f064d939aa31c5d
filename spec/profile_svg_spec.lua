-- The flame graph of examples/profile.lua (issue 16) opened in headless
-- Chromium (Debian's `chromium`): the page renders the function names, its
-- script runs without an error, a screenshot is taken, and hovering,
-- clicking and searching do what the page says. Pending, saying why, when
-- chromium is not installed. In child processes (#child).
local child = require "spec.support.signal_child"

local function have_chromium()
  local ok = os.execute("command -v chromium >/dev/null 2>&1")
  return ok == true or ok == 0
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Runs chromium headless on file `path` with `flags`; returns stdout and
-- stderr (its log). LD_PRELOAD (ASan's runtime under `make asan`) is not
-- for the browser.
local function chromium(flags, path, dir)
  local out, err = dir .. "/chromium.out", dir .. "/chromium.err"
  local cmd = ("env -u LD_PRELOAD HOME=%s timeout -s KILL 90 chromium --headless --no-sandbox " ..
               "--disable-gpu --no-first-run --enable-logging=stderr --v=0 %s 'file://%s' >%s 2>%s")
              :format(dir, flags, path, out, err)
  os.execute(cmd)
  return read(out) or "", read(err) or ""
end

-- Calls the page's own functions once it has loaded, and writes what they
-- did into attributes of the root element, which --dump-dom shows.
local PROBE = [==[
<script><![CDATA[
window.addEventListener('load', function () {
  var root = document.documentElement, gs = document.querySelectorAll('g.f');
  var target = null;
  for (var i = 0; i < gs.length; i++)
    if (g_name(gs[i]).indexOf('parse_all (') === 0) { target = gs[i]; break; }
  target.dispatchEvent(new MouseEvent('mouseover'));
  root.setAttribute('data-hover', document.getElementById('details').textContent);
  target.dispatchEvent(new MouseEvent('click'));
  var shown = 0, hidden = 0, zoomed_width = target.querySelector('rect').getAttribute('width');
  for (var j = 0; j < gs.length; j++) gs[j].classList.contains('hide') ? hidden++ : shown++;
  root.setAttribute('data-zoom', shown + ' shown, ' + hidden + ' hidden, width ' + zoomed_width);
  var box = document.getElementById('search');
  box.value = 'checksum';
  box.dispatchEvent(new Event('input'));
  root.setAttribute('data-search', document.querySelectorAll('g.hit').length + ' hits; ' +
                    document.getElementById('matched').textContent);
});
]]></script>
</svg>
]==]

describe("examples/profile.lua in headless Chromium #child", function()
  if not have_chromium() then
    pending("chromium is not installed (apt-get install chromium): the flame graph is not opened in a browser")
    return
  end

  local dir, svg, dom, log

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    svg = dir .. "/profile.svg"
    local out, status = child.shell("lua5.4 examples/profile.lua " .. svg, 60)
    assert.are.equal(0, status, out)
    assert.matches("wall profile: %d+ samples", out)
    -- the same page with the probe before its end
    local probed = dir .. "/probed.svg"
    local f = assert(io.open(probed, "w"))
    f:write((assert(read(svg)):gsub("</svg>%s*$", function() return PROBE end)))
    f:close()
    dom, log = chromium("--dump-dom", probed, dir)
  end)

  teardown(function()
    if dir then os.execute("rm -rf " .. dir) end
  end)

  it("renders the function names and the forks, and logs no script error", function()
    assert.truthy(dom:find('data%-ready="%d+"'), "the page's script did not run:\n" .. log)
    for _, name in ipairs({ "parse_all (examples/profile.lua:", "checksum (examples/profile.lua:",
                            "fetch (examples/profile.lua:", "[fork #", "'parser 1'", "[sleeping]" }) do
      assert.truthy(dom:find(name, 1, true), name)
    end
    assert.is_nil(log:find("Uncaught", 1, true), log)
    assert.is_nil(log:find(":CONSOLE", 1, true), log)
  end)

  it("shows a frame's share on hover, zooms on click, highlights a search", function()
    local hover = dom:match('data%-hover="([^"]*)"')
    assert.matches("^parse_all %(examples/profile%.lua:%d+%) %(%d+ samples?, [%d.]+%%%)$", hover)
    local shown, hidden, width = dom:match('data%-zoom="(%d+) shown, (%d+) hidden, width ([%d.]+)"')
    assert.truthy(shown, dom:sub(1, 300))
    assert.is_true(tonumber(hidden) > 0)          -- the other forks' frames
    assert.is_true(math.abs(tonumber(width) - 1180) < 1e-6)       -- the zoomed frame spans the graph
    local hits, share = dom:match('data%-search="(%d+) hits; Matched: ([%d.]+)%%"')
    assert.is_true(tonumber(hits) >= 1, dom:match('data%-search="[^"]*"'))
    assert.is_true(tonumber(share) > 0 and tonumber(share) < 100)
  end)

  it("takes a screenshot", function()
    local png = dir .. "/profile.png"
    local _, shot_log = chromium(("--screenshot=%s --window-size=1200,400"):format(png), svg, dir)
    local bytes = read(png)
    assert.truthy(bytes, shot_log)
    assert.are.equal("\137PNG\r\n\26\n", bytes:sub(1, 8))
    assert.is_true(#bytes > 5000)
  end)
end)
