-- Shared by every scenario: per-thread status counts and a JSON summary the harness parses.
-- Globals (not locals) because wrk's thread:get() can only read a thread's globals.

local threads = {}
counts = {}
n = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if on_response then
    on_response(status, headers)
  end
end

local function percentile_ms(latency, p)
  return latency:percentile(p) / 1000.0
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("counts")) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  local statuses = {}
  for status, count in pairs(totals) do
    statuses[#statuses + 1] = string.format('"%d": %d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "statuses": %s, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"latency_ms": {"min": %.3f, "mean": %.3f, "max": %.3f, "p50": %.3f, "p90": %.3f, ' ..
    '"p95": %.3f, "p99": %.3f}}\n',
    summary.requests, summary.duration, "{" .. table.concat(statuses, ", ") .. "}",
    e.connect, e.read, e.write, e.timeout,
    latency.min / 1000.0, latency.mean / 1000.0, latency.max / 1000.0,
    percentile_ms(latency, 50), percentile_ms(latency, 90), percentile_ms(latency, 95),
    percentile_ms(latency, 99)))
end
