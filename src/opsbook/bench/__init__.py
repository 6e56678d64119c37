"""`make bench`: converge, no-op, refresh, scaling, driver-overhead and deploy timings."""
