-- wrk: POST /v1/session with the bench admin's credentials, without pause (a login storm).
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"email":"bench@pressroom.local","password":"bench-password-1"}'
end
