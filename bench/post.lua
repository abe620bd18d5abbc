-- wrk: POST /v1/posts with a unique title per request (run, thread id, counter), bearer token from TOKEN.
-- The run part keeps a second run against the same database off the slug-clash path.
local counter = 0
local thread_id = 0
local run = os.time()
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid or 0
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end

function request()
  counter = counter + 1
  local body = string.format('{"title":"bench %d %d-%d","body_markdown":"A **bench** post body."}', run, thread_id, counter)
  return wrk.format("POST", "/v1/posts", nil, body)
end
