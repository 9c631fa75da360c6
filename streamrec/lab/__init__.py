"""The lab: the synthetic world (generator and ground truth), the closed-loop simulator that drives the API,
the demo, and synthetic bundles for benchmarks. It sits above the API and the batch jobs.
"""
