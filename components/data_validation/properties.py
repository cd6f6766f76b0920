"""The custom properties DataGate records on its DataVerdict; the pusher and summary read them."""

PASSED = "passed"  # 1 when the data may be trained on and pushed
PROBLEMS = "problems"  # JSON list of one-sentence problems
COMPARED_WITH = "compared_with"  # "span 2", or "" when there was nothing to compare with
