-- wrk script: GET / with the headers of one line of $HEADERS_FILE per request, rotating through
-- the lines (each line: `Name: value` fields separated by tabs). Requests are built in init(),
-- so the per-request Lua cost is one table lookup.
--   HEADERS_FILE=signed.txt wrk -s headers.lua URL
-- Ends with one "BENCH key=value ..." line that signatures.sh parses.

local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  local path = os.getenv("HEADERS_FILE")
  if not path or path == "" then
    error("headers.lua: set HEADERS_FILE")
  end
  reqs = {}
  for line in io.lines(path) do
    local headers = {}
    for field in line:gmatch("[^\t]+") do
      local name, value = field:match("^([^:]+):%s*(.-)%s*$")
      if name then headers[name] = value end
    end
    reqs[#reqs + 1] = wrk.format("GET", "/", headers)
  end
  if #reqs == 0 then error("headers.lua: no lines in " .. path) end
  idx = ((tid or 0) * 7919) % #reqs
end

function request()
  idx = idx + 1
  if idx > #reqs then idx = 1 end
  return reqs[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
