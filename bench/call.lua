-- wrk: POST one JSON-RPC body (BODY) with an optional session (SID),
-- bearer token (TOKEN) and more headers (HEADERS, "Name: value" lines),
-- MCP-Protocol-Version VERSION (2025-11-25 unless set).
--
-- Each request carries its own JSON-RPC id (BODY's "id":1 replaced by a
-- number unique across threads), and each answer is checked: its status
-- is 200, its id is one of its thread's requests still unanswered (an
-- answer to another request, or a second answer, is counted mismatched)
-- and it says "Hello, bench!" (unless CHECK is "status": nginx's static
-- reply has a fixed id). done prints "non200 N mismatched M" and up to 3
-- bad answers per thread.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
local version = os.getenv("VERSION")
if not version or version == "" then version = "2025-11-25" end
wrk.headers["MCP-Protocol-Version"] = version
local sid = os.getenv("SID")
if sid and sid ~= "" then
  wrk.headers["Mcp-Session-Id"] = sid
end
local token = os.getenv("TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
for name, value in (os.getenv("HEADERS") or ""):gmatch("([^:\n]+):%s*([^\n]*)") do
  wrk.headers[name] = value
end
local body = os.getenv("BODY")
local before, after = body:match('^(.-"id":)1([,}].*)$')
local check_id = os.getenv("CHECK") ~= "status" and before ~= nil

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

-- Per thread (each has its own Lua state).
local next_id, pending = 0, {}
non200, mismatched, samples, nsamples = 0, 0, "", 0

function request()
  if not check_id then
    return wrk.format(nil, nil, nil, body)
  end
  next_id = next_id + 1
  local id = tid * 1000000000 + next_id
  pending[id] = true
  return wrk.format(nil, nil, nil, before .. id .. after)
end

local function bad(kind, status, text)
  if nsamples < 3 then
    nsamples = nsamples + 1
    samples = samples .. string.format("  %s: %d %s\n", kind, status, text:sub(1, 300))
  end
end

function response(status, headers, text)
  if status ~= 200 then
    non200 = non200 + 1
    bad("status", status, text)
    return
  end
  if not check_id then return end
  local id = tonumber(text:match('"id":(%d+)'))
  if id and pending[id] and text:find("Hello, bench!", 1, true) then
    pending[id] = nil
  else
    mismatched = mismatched + 1
    bad("mismatched", status, text)
  end
end

function done(summary, latency, requests)
  local n, m, s = 0, 0, ""
  for _, t in ipairs(threads) do
    n = n + t:get("non200")
    m = m + t:get("mismatched")
    s = s .. t:get("samples")
  end
  io.write(string.format("non200 %d mismatched %d\n", n, m))
  io.write(s)
end
