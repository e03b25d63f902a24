"""Network recasting schedules: every block of a teacher recast in turn, simulated and summed
(``schedule.py``; the step itself is the workload ``recast:TEACHER:BLOCK:STUDENT``)."""
