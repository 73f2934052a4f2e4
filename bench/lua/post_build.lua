-- POST /api/v1/builds: a new public build per request, a fresh session each (one awaited
-- INSERT per request: the baseline group-committed votes are compared with).
local counter = 0
local next_tid = 0
local run = os.time() % 4294967295
setup = function(thread) thread:set("tid", next_tid); next_tid = next_tid + 1 end
request = function()
  counter = counter + 1
  local sess = string.format("sess_%08x%04x%012x", run, tid + 1, counter)
  return wrk.format("POST", "/api/v1/builds",
    {["Content-Type"] = "application/json", ["X-Session-ID"] = sess},
    string.format('{"name":"Bench build %d","primary_archetype":"tank",' ..
      '"secondary_archetype":"cleric","race":"kaelar","is_public":true}', counter))
end
