-- wrk: POST /v1/session with the bench admin's credentials, without pause (a login storm).
local body = '{"email":"bench@pressroom.local","password":"bench-password-1"}'
local headers = { ["Content-Type"] = "application/json" }

function request()
  return wrk.format("POST", "/v1/session", headers, body)
end
