"""The fix machinery: model (Fix, Param, Plan and the contract), flow (gather, plan, show,
confirm, apply, verify), journal (every touched file saved first; undo), envhook (the start-up
hook that sets variables for an environment). The built-in fixes are in llmdoctor.fixes."""
