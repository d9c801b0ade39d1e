-- GET one path, rotating over bearer tokens (none for the HTTP ceiling).
-- Parameters: PATH, TOKENS.

function request()
  n = n + 1
  local headers = {}
  if #TOKENS > 0 then
    headers["Authorization"] = "Bearer " .. TOKENS[(n + tid) % #TOKENS + 1]
  end
  return wrk.format("GET", PATH, headers)
end
