-- POST /api/v1/analytics/search with a spread of queries and sessions. With BENCH_TOKENS
-- (a file of bearer tokens, one per line) each request also carries one of them.
local queries = {"tank build", "best healer", "paladin guide", "mage pvp", "node war", "ranger bow",
                 "bard songs", "cleric support", "summoner pets", "rogue stealth"}
local tokens = {}
local tokens_file = os.getenv("BENCH_TOKENS")
if tokens_file then
  for line in io.lines(tokens_file) do tokens[#tokens + 1] = "Bearer " .. line end
end
local counter = 0
local next_tid = 0
setup = function(thread) thread:set("tid", next_tid); next_tid = next_tid + 1 end
request = function()
  counter = counter + 1
  local q = queries[(counter % #queries) + 1]
  local sess = string.format("sess_%012x%012x", tid + 1, counter % 5000)
  local body = string.format('{"query":"%s %d","search_mode":"quick","result_count":%d}', q, counter % 50, counter % 20)
  local headers = {["Content-Type"] = "application/json", ["X-Session-ID"] = sess}
  if #tokens > 0 then headers["Authorization"] = tokens[(counter % #tokens) + 1] end
  return wrk.format("POST", "/api/v1/analytics/search", headers, body)
end
