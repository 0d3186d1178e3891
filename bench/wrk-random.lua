-- wrk script: each request carries a key picked at random from TOKENS_FILE
-- (the "many keys" workload).
-- Usage: wrk ... -s bench/wrk-random.lua URL -- TOKENS_FILE [once]
-- Requests are formatted once in init(); request() only picks one.  With
-- "once", each thread sends every key once, in file order, then stops and
-- says "BENCH warm-up done" (wrk itself waits out -d, so the caller kills it
-- then): the warm-up that fills the caches.

local reqs = {}
local n = 0
local i = 0
local answered = 0
local once = false
local random = math.random

function init(args)
   for token in io.lines(args[1]) do
      n = n + 1
      reqs[n] = wrk.format(nil, nil,
                           { Authorization = "Bearer " .. token })
   end
   once = args[2] == "once"
   if once then
      response = function()
         answered = answered + 1
         if answered == n then
            io.write("BENCH warm-up done\n")
            io.stdout:flush()
            wrk.thread:stop()
         end
      end
   end
   math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16)
                                or 0))
end

function request()
   if once then
      i = i % n + 1
      return reqs[i]
   end
   return reqs[random(n)]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d mean_us=%.1f "
      .. "max_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.requests, summary.duration, latency:percentile(50),
      latency:percentile(99), latency.mean, latency.max, e.connect, e.read,
      e.write, e.status, e.timeout))
end
