-- POST credentials, either rotating over known emails or a never-seen email per request
-- (registration, unknown-email logins). Parameters: PATH, FORMAT ("json" | "form"),
-- EMAILS (empty: generate), EMAIL_PREFIX, EMAIL_DOMAIN, PASSWORD (empty: the address alone, as
-- forgot-password and resend take it), REMEMBER_ME.

local function email()
  if #EMAILS > 0 then
    return EMAILS[(n + tid) % #EMAILS + 1]
  end
  return string.format("%s-%d-%d@%s", EMAIL_PREFIX, tid, n, EMAIL_DOMAIN)
end

local function urlencode(value)
  return (value:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function request()
  n = n + 1
  local address = email()
  if FORMAT == "form" then
    return wrk.format("POST", PATH,
      {["Content-Type"] = "application/x-www-form-urlencoded"},
      "username=" .. urlencode(address) .. "&password=" .. urlencode(PASSWORD))
  end
  if PASSWORD == "" then
    return wrk.format("POST", PATH, {["Content-Type"] = "application/json"},
      string.format('{"email": "%s"}', address))
  end
  local extra = REMEMBER_ME and ', "remember_me": true' or ""
  return wrk.format("POST", PATH, {["Content-Type"] = "application/json"},
    string.format('{"email": "%s", "password": "%s"%s}', address, PASSWORD, extra))
end
