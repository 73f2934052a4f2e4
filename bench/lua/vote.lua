-- POST /api/v1/builds/{id}/vote: fresh session every request, builds from ids.txt (many builds).
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS") or "bench/results/ids.tmp") do ids[#ids + 1] = line end
local counter = 0
local next_tid = 0
local run = os.time() % 4294967295
setup = function(thread) thread:set("tid", next_tid); next_tid = next_tid + 1 end
request = function()
  counter = counter + 1
  local id = ids[(counter * 7919 % #ids) + 1]
  local sess = string.format("sess_%08x%04x%012x", run, tid + 1, counter)
  return wrk.format("POST", "/api/v1/builds/" .. id .. "/vote",
    {["Content-Type"] = "application/json", ["X-Session-ID"] = sess},
    string.format('{"rating":%d}', counter % 5 + 1))
end
