-- POST /api/v1/analytics/search with near-maximal (480-char) queries: fills the buffer's
-- byte cap fastest. Used to show the cap bounds memory.
local counter = 0
local pad = string.rep("siege weapon caravan guide ", 18)
request = function()
  counter = counter + 1
  local body = string.format('{"query":"%d %s","search_mode":"deep","result_count":1}', counter, pad)
  return wrk.format("POST", "/api/v1/analytics/search", {["Content-Type"] = "application/json"}, body)
end
