-- Refresh-token rotation: each thread owns one connection and one cookie chain, replacing its
-- cookie with the one every response sets (reusing an old one would revoke the session).
-- Parameters: PATH, COOKIE_NAME, COOKIES (one per thread).

function init(args)
  cookie = COOKIES[tid]
end

function on_response(status, headers)
  for name, value in pairs(headers) do
    if name:lower() == "set-cookie" then
      local fresh = value:match("^" .. COOKIE_NAME .. "=([^;]*)")
      if fresh and fresh ~= "" then
        cookie = fresh
      end
    end
  end
end

function request()
  n = n + 1
  return wrk.format("POST", PATH, {["Cookie"] = COOKIE_NAME .. "=" .. cookie})
end
