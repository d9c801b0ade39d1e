-- GET one path, rotating over bearer tokens (none for the HTTP ceiling).
-- Parameters: PATH, TOKENS, PAUSE_MS (each connection waits this long between its requests:
-- light traffic beside another load, rather than as much as the server takes).

if PAUSE_MS > 0 then
  function delay()
    return PAUSE_MS
  end
end

function request()
  n = n + 1
  local headers = {}
  if #TOKENS > 0 then
    headers["Authorization"] = "Bearer " .. TOKENS[(n + tid) % #TOKENS + 1]
  end
  return wrk.format("GET", PATH, headers)
end
