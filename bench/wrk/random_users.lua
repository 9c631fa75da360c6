-- wrk script for bench/serve.py: GET /v1/recommendations for uniformly random users.
--
-- Environment:
--   USERS  user ids are drawn uniformly from 1..USERS (default 1000000)
--   RATE   paced mode when set: target arrival rate in req/s over all connections
--   CONNS  paced mode: the -c value wrk runs with (each connection thinks CONNS / RATE s on average)
--
-- Closed loop (RATE unset): every connection sends its next request as soon as the previous answer arrives.
-- Paced (RATE set): before each request a connection waits an exponential think time with mean
-- CONNS / RATE * 1000 ms, so CONNS connections with Poisson think times approximate a Poisson arrival process
-- at RATE req/s while the latency is far below the think time (wrk has no true open loop). wrk measures the
-- latency from the write of the request, so the think time is not part of it.
--
-- done() prints one line "WRK_JSON {...}" (counts, duration and latency percentiles in microseconds) that
-- bench/serve.py parses; wrk's own human-readable report is printed before it.

local users = tonumber(os.getenv("USERS") or "1000000")
local rate = tonumber(os.getenv("RATE") or "")
local conns = tonumber(os.getenv("CONNS") or "")

local next_id = 0

function setup(thread)
  -- runs in the main Lua state once per thread: give each thread its own id for its seed
  next_id = next_id + 1
  thread:set("id", next_id)
end

function init(args)
  -- each wrk thread has its own Lua state and generator; seed them apart so threads do not repeat users
  math.randomseed(os.time() * 1000 + (id or 0))
  math.random()  -- the first draw after seeding is poorly mixed in some Lua versions
end

function request()
  return wrk.format("GET", "/v1/recommendations?user_id=" .. math.random(1, users) .. "&k=10")
end

if rate and rate > 0 then
  assert(conns and conns > 0, "paced mode needs CONNS (the -c value) next to RATE")
  local mean_ms = conns / rate * 1000
  -- wrk only calls delay() if the script defines it, so the closed loop simply leaves it undefined
  function delay()
    -- inverse-CDF exponential draw; 1 - random() is in (0, 1], so log() is finite. wrk truncates the
    -- returned ms to an integer: round instead so the mean think time is not biased down by 0.5 ms
    return math.floor(-mean_ms * math.log(1 - math.random()) + 0.5)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local function p(q) return latency:percentile(q) end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p99.9": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    p(50), p(90), p(99), p(99.9), latency.max, latency.mean
  ))
end
