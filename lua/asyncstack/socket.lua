-- asyncstack.socket: LuaSocket TCP whose calls suspend the calling fork
-- instead of blocking the process.
--
-- A thin layer: each wrapped socket keeps its LuaSocket object at timeout 0
-- while used from a fork. A call that would block (LuaSocket says "timeout")
-- waits for the fd and tries again, carrying on from what the first
-- attempt did (receive passes the partial result back as the prefix, send
-- continues after the last byte sent, connect asks again for the result).
-- The waits are core.wait_io's: the fd stays registered with the poller
-- between them (no epoll_ctl per wait), and close() drops it before the fd
-- is closed. A socket whose reads run ahead of its peer (the last read
-- found nothing and LuaSocket's buffer is empty) waits before reading
-- instead of making a read that would fail: the registration is
-- level-triggered, so data already there wakes it at the next poll.
-- Results follow LuaSocket's convention: values, or nil, err [, partial];
-- our own timeouts give nil, "timeout" like LuaSocket's and never raise
-- as.Timeout. Outside a fork the calls block the way LuaSocket's do, with the
-- same timeouts. Optional: requiring asyncstack does not load LuaSocket.

local as = require "asyncstack"
local core = require "asyncstack.core"
local luasocket = require "socket"

local format, type, tostring = string.format, type, tostring
local getmetatable, setmetatable = getmetatable, setmetatable
local math_type, tointeger = math.type, math.tointeger
local current, now = as.current, as.now
local wait_io, forget_fd = core.wait_io, core.forget_fd

local M = {}

local Socket = {}
local mt = { __name = "asyncstack.Socket", __index = Socket }

-- A fork that ended while waiting (its run was abandoned) is no waiter.
local ENDED = { done = true, failed = true, cancelled = true }

-- Which timeouts the LuaSocket object is set to: ours (BLOCKING, outside
-- forks) or zero (NONBLOCKING, in forks). Switched only when it changes.
local NONBLOCKING, BLOCKING = 1, 2

---------------------------------------------------------- argument checks

local function typename(v)
  local m = getmetatable(v)
  if type(m) == "table" and type(m.__name) == "string" then return m.__name end
  return type(v)
end

-- Errors name the call the way Lua's C methods do: self is not counted.
-- `level` counts from the caller of argerror (2: the caller's caller).
local function argerror(fname, n, msg, level)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), (level or 2) + 1)
end

-- Returns the LuaSocket object. With `raw_name`, the object must have that
-- method. (LuaSocket itself refuses a call on the wrong kind of socket:
-- "calling 'receive' on bad self (tcp{client} expected)".)
local function check_self(self, fname, raw_name)
  if getmetatable(self) ~= mt then
    error(format("calling '%s' on bad self (asyncstack.Socket expected, got %s)",
                 fname, typename(self)), 3)
  end
  local sock = self._sock
  if raw_name and sock[raw_name] == nil then
    error(format("calling '%s' on bad self (%s has no '%s')", fname,
                 tostring(sock):match("^[^:]*"), raw_name), 3)
  end
  return sock
end

local function check_string(fname, n, v, optional)
  if type(v) == "string" or (optional and v == nil) then return v end
  if type(v) == "number" then return tostring(v) end   -- as luaL_checklstring
  argerror(fname, n, format("string expected, got %s", typename(v)), 3)
end

local function check_port(fname, n, v)
  if type(v) ~= "number" and type(v) ~= "string" then
    argerror(fname, n, format("number or string expected, got %s", typename(v)), 3)
  end
end

local function check_index(fname, n, v)
  if v == nil or math_type(v) == "integer" then return v end
  if math_type(v) == "float" and tointeger(v) then return tointeger(v) end
  argerror(fname, n, format("integer expected, got %s",
                            type(v) == "number" and "non-integral number" or typename(v)), 3)
end

local PATTERNS = { ["*l"] = "*l", l = "*l", ["*a"] = "*a", a = "*a" }

-- Returns the pattern in the form LuaSocket 3.0 takes ("*l", "*a", count).
local function check_pattern(v)
  if v == nil then return "*l" end
  if type(v) == "string" then
    local p = PATTERNS[v]
    if p then return p end
    argerror("receive", 1, format("invalid pattern '%s': '*l', '*a' or a byte count expected", v), 3)
  elseif type(v) == "number" then
    local n = tointeger(v)
    if n and n >= 0 then return n end
    argerror("receive", 1, "byte count must be a non-negative integer", 3)
  end
  argerror("receive", 1, format("'*l', '*a' or a byte count expected, got %s", typename(v)), 3)
end

local function check_timeout(fname, n, v)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v then
    argerror(fname, n, format("number or nil expected, got %s", v ~= v and "nan" or typename(v)), 3)
  end
  if v < 0 or v == math.huge then return nil end    -- LuaSocket: negative means forever
  return v
end

------------------------------------------------------------------- waiting

local function nonblocking(self)
  if self._mode ~= NONBLOCKING then
    self._sock:settimeout(0, "b")
    self._sock:settimeout(nil, "t")
    self._mode = NONBLOCKING
  end
end

local function blocking(self)
  if self._mode ~= BLOCKING then
    self._sock:settimeout(self._block, "b")
    self._sock:settimeout(self._total, "t")
    self._mode = BLOCKING
  end
end

-- The end of the call starting now under the "t" timeout, or nil.
local function deadline_of(self)
  return self._total and now() + self._total
end

-- Waits until the socket is ready ("r" or "w"). Returns nil when it is, or
-- "timeout" (our limit passed) or "closed" (another fork closed the socket).
-- A timeout of zero answers at once, as LuaSocket does, without suspending.
-- A cancel raises as.Cancelled through it. `me`: the running fork.
local function wait(self, fname, mode, deadline, me)
  local waiting = self._waiting
  local other = waiting[mode]
  -- (a fork that left a wait by an error is no longer waiting in it)
  if other and other ~= me and not ENDED[other:status()] then
    error(format("%s: %s is already waiting to %s on this socket (one reader and one writer at a time)",
                 fname, tostring(other), mode == "r" and "read" or "write"), 3)
  end
  local limit = self._block
  if deadline then
    local left = deadline - now()
    if left < 0 then left = 0 end
    if limit == nil or left < limit then limit = left end
  end
  if limit == 0 then return "timeout" end
  local fd = self._fd
  if not fd then
    fd = tointeger(self._sock:getfd())
    self._fd = fd
  end
  waiting[mode] = me
  local ok, r = wait_io(fd, mode, limit, self._token)
  waiting[mode] = nil
  if ok then
    self._token = r
    return nil
  end
  return r
end

-- The LuaSocket errors that mean "not now": plain sockets say "timeout",
-- LuaSec-style wrappers "wantread"/"wantwrite".
local function retry_mode(err, default)
  if err == "timeout" then return default end
  if err == "wantread" then return "r" end
  if err == "wantwrite" then return "w" end
  return nil
end

--------------------------------------------------------------- the object

local function wrap(sock)
  return setmetatable({
    _sock = sock,
    _mode = nil,            -- NONBLOCKING, BLOCKING, or not set yet
    _block = nil,           -- settimeout(t, "b"): each wait; nil = forever
    _total = nil,           -- settimeout(t, "t"): each call; nil = forever
    _waiting = {},          -- mode ("r"/"w") -> the fork waiting in it
    _fd = nil,              -- the LuaSocket's fd, once it has waited
    _token = nil,           -- core.wait_io's token for the fd's registration
    _ahead = false,         -- our last read found nothing: wait before reading
    _closed = false,
  }, mt)
end

-- sock:receive([pattern [, prefix]]) -> data | nil, err, partial
function Socket:receive(pattern, prefix)
  local sock = check_self(self, "receive")
  -- (the checks are skipped for the common nil arguments: this is the
  -- path of every line a server reads)
  if pattern == nil then pattern = "*l" else pattern = check_pattern(pattern) end
  if prefix ~= nil then prefix = check_string("receive", 2, prefix, true) end
  local me = current()
  if not me then
    blocking(self)
    return sock:receive(pattern, prefix)
  end
  if self._mode ~= NONBLOCKING then nonblocking(self) end
  local given, deadline = prefix and #prefix or 0, self._total and deadline_of(self)
  -- (a byte count the prefix already covers needs no data: no wait)
  if self._ahead and (type(pattern) ~= "number" or pattern > given) then
    if sock:dirty() then
      self._ahead = false             -- the peer is ahead of us again
    else
      -- our reads run ahead of the peer: a read now would most likely
      -- find nothing. A timeout still leaves one read to try, as below.
      local failed = wait(self, "receive", "r", deadline, me)
      if failed == "closed" then return nil, failed, prefix or "" end
    end
  end
  while true do
    local data, err, partial = sock:receive(pattern, prefix)
    if data then return data end
    -- "*a" ends successfully at "closed" if the call got any bytes; LuaSocket
    -- counts the bytes of one attempt, we count those of the whole call.
    if err == "closed" and pattern == "*a" and partial and #partial > given then return partial end
    local mode = retry_mode(err, "r")
    if not mode then return nil, err, partial end
    prefix = partial
    self._ahead = mode == "r"
    local failed = wait(self, "receive", mode, deadline, me)
    if failed then return nil, failed, partial end
  end
end

-- sock:send(data [, i [, j]]) -> index of the last byte sent | nil, err, last
function Socket:send(data, i, j)
  local sock = check_self(self, "send")
  if type(data) ~= "string" then data = check_string("send", 1, data) end
  if i ~= nil then i = check_index("send", 2, i) end
  if j ~= nil then j = check_index("send", 3, j) end
  local me = current()
  if not me then
    blocking(self)
    local last, err, sent = sock:send(data, i, j)
    return tointeger(last) or last, err, tointeger(sent) or sent
  end
  if self._mode ~= NONBLOCKING then nonblocking(self) end
  local deadline = self._total and deadline_of(self)
  while true do
    local last, err, sent = sock:send(data, i, j)
    if last then return tointeger(last) end
    sent = tointeger(sent) or sent
    local mode = retry_mode(err, "w")
    if not mode then return nil, err, sent end
    i = sent + 1
    local failed = wait(self, "send", mode, deadline, me)
    if failed then return nil, failed, sent end
  end
end

-- sock:connect(host, port) -> 1 | nil, err
function Socket:connect(host, port)
  local sock = check_self(self, "connect")
  host = check_string("connect", 1, host)
  check_port("connect", 2, port)
  if not current() then
    blocking(self)
    local ok, err = sock:connect(host, port)
    return ok and 1, err
  end
  nonblocking(self)
  local deadline = deadline_of(self)
  local ok, err = sock:connect(host, port)
  while not ok do
    -- A non-blocking connect is in progress: once the socket is writable,
    -- connecting again tells how it went ("already connected" is success).
    if err == "already connected" then return 1 end
    if err ~= "timeout" and err ~= "Operation already in progress" then return nil, err end
    local failed = wait(self, "connect", "w", deadline, current())
    if failed then return nil, failed end
    ok, err = sock:connect(host, port)
  end
  return 1
end

-- server:accept() -> asyncstack.Socket | nil, err
function Socket:accept()
  local sock = check_self(self, "accept")
  if not current() then
    blocking(self)
    local client, err = sock:accept()
    if client then return wrap(client) end
    return nil, err
  end
  nonblocking(self)
  local deadline = deadline_of(self)
  while true do
    local client, err = sock:accept()
    if client then return wrap(client) end
    local mode = retry_mode(err, "r")
    if not mode then return nil, err end
    local failed = wait(self, "accept", mode, deadline, current())
    if failed then return nil, failed end
  end
end

-- sock:settimeout(t [, mode]) -> 1. Our own limit, in seconds, on each call
-- ("t", the default here) or on each wait within a call ("b"); nil or a
-- negative value means none.
function Socket:settimeout(t, mode)
  check_self(self, "settimeout")
  t = check_timeout("settimeout", 1, t)
  if mode == nil or mode == "t" or mode == "r" then
    self._total = t
  elseif mode == "b" then
    self._block = t
  else
    argerror("settimeout", 2, format("invalid mode %s: 'b' or 't' expected",
                                     type(mode) == "string" and "'" .. mode .. "'" or typename(mode)))
  end
  self._mode = nil
  return 1
end

-- sock:close() -> 1. Forks blocked in a call on this socket get nil, "closed".
function Socket:close()
  local sock = check_self(self, "close")
  self._closed = true
  -- Wake them and drop the fd's registration before the fd goes.
  if self._fd then forget_fd(self._fd) end
  self._fd, self._token = nil, nil
  sock:close()
  return 1
end

function Socket:getfd()
  local fd = check_self(self, "getfd"):getfd()
  return tointeger(fd) or fd
end

-- Calls that never block: LuaSocket's own, results as they are.
for _, name in ipairs({ "bind", "listen", "getsockname", "getpeername",
                        "setoption", "getoption", "shutdown", "dirty",
                        "getstats", "setstats" }) do
  Socket[name] = function(self, ...)
    local sock = check_self(self, name, name)
    return sock[name](sock, ...)
  end
end

mt.__close = function(self) self:close() end
mt.__tostring = function(self)
  return format("asyncstack.Socket (%s%s)", tostring(self._sock), self._closed and ", closed" or "")
end

------------------------------------------------------------ constructors

-- socket.tcp() -> asyncstack.Socket | nil, err
function M.tcp()
  local sock, err = luasocket.tcp()
  if not sock then return nil, err end
  return wrap(sock)
end

-- socket.connect(host, port [, timeout]) -> connected socket | nil, err.
-- The timeout limits the connection and stays the socket's ("t") timeout.
function M.connect(host, port, timeout)
  host = check_string("connect", 1, host)
  check_port("connect", 2, port)
  timeout = check_timeout("connect", 3, timeout)
  local sock, err = M.tcp()
  if not sock then return nil, err end
  sock._total = timeout
  local ok
  ok, err = sock:connect(host, port)
  if not ok then
    sock:close()
    return nil, err
  end
  return sock
end

-- socket.bind(host, port [, backlog]) -> listening socket | nil, err
-- (LuaSocket's: reuseaddr set, "*" means every address, backlog 32).
function M.bind(host, port, backlog)
  host = check_string("bind", 1, host)
  check_port("bind", 2, port)
  if backlog ~= nil and not tointeger(backlog) then
    argerror("bind", 3, format("integer expected, got %s", typename(backlog)))
  end
  local sock, err = luasocket.bind(host, port, backlog)
  if not sock then return nil, err end
  return wrap(sock)
end

-- socket.wrap(luasocket_tcp) -> asyncstack.Socket around a LuaSocket TCP
-- object made elsewhere (which it then owns).
function M.wrap(sock)
  if type(sock) ~= "userdata" or not tostring(sock):match("^tcp{") then
    argerror("wrap", 1, format("LuaSocket TCP object expected, got %s", typename(sock)))
  end
  return wrap(sock)
end

return M
