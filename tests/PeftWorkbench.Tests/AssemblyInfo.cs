// Test classes run one at a time. Many draw from torch's global generator (model construction after
// manual_seed, dropout, drop path, shuffles); xunit's default runs classes in parallel, and a concurrent draw
// from another thread changes a seeded run's numbers, which made same-seed comparisons flaky. On 2 cores,
// with libtorch already using both, parallel classes bought little time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
