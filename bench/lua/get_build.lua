-- GET /api/v1/builds/{id} over a set of public builds (warm cache: all ids already read).
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS") or "bench/results/ids.tmp") do ids[#ids + 1] = line end
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/v1/builds/" .. ids[(counter % #ids) + 1])
end
