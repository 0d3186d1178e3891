-- wrk script: every request carries the same API key (the "hot key" workload).
-- Usage: wrk ... -s bench/wrk-hot.lua URL -- TOKENS_FILE
-- The first line of TOKENS_FILE is the key; the request stays static, so wrk
-- spends no Lua per request.

function init(args)
   local f = assert(io.open(args[1], "r"))
   local token = f:read("*l")
   f:close()
   wrk.headers["Authorization"] = "Bearer " .. token
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
