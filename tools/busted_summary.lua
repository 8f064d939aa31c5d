-- Reads busted's TAP output (-o TAP) on stdin, echoes it, and ends with the
-- plain line "N passed, N failed, N skipped". Exits non-zero when anything
-- failed, when nothing ran, or when the plan line does not match the count
-- (a runner that died half-way must not look green).
local passed, failed, skipped, planned = 0, 0, 0, nil
for line in io.lines() do
  print(line)
  local plan = line:match("^1%.%.(%d+)$")
  if plan then planned = tonumber(plan) end
  if line:match("^ok %d+") then
    if line:match("# SKIP") then skipped = skipped + 1 else passed = passed + 1 end
  elseif line:match("^not ok %d+") then
    failed = failed + 1
  end
end
local total = passed + failed + skipped
if planned ~= total then
  print(("busted planned %s tests but reported %d"):format(tostring(planned), total))
  failed = failed + math.max(1, (planned or 0) - total)
end
print(("%d passed, %d failed, %d skipped"):format(passed, failed, skipped))
os.exit((failed == 0 and passed > 0) and 0 or 1)
