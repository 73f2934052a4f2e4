-- POST /api/v1/builds/{BENCH_BUILD}/vote: ONE build, a fresh session every request (the hot-
-- build and new-build scenarios; the build id comes from the environment).
local id = os.getenv("BENCH_BUILD")
local counter = 0
local next_tid = 0
local run = os.time() % 4294967295
setup = function(thread) thread:set("tid", next_tid); next_tid = next_tid + 1 end
request = function()
  counter = counter + 1
  local sess = string.format("sess_%08x%04x%012x", run, tid + 1, counter)
  return wrk.format("POST", "/api/v1/builds/" .. id .. "/vote",
    {["Content-Type"] = "application/json", ["X-Session-ID"] = sess},
    string.format('{"rating":%d}', counter % 5 + 1))
end
