using PeftWorkbench.Training;
using Xunit;

namespace PeftWorkbench.Tests.Training;

public class ThreadBudgetTests
{
    [Theory]
    [InlineData(0.0, 2, 2, 2)]   // free cores: every thread
    [InlineData(0.49, 2, 2, 2)]
    [InlineData(0.5, 2, 2, 1)]   // half a core taken: one thread, no team to spin for
    [InlineData(1.7, 2, 2, 1)]   // never fewer than one
    [InlineData(1.2, 8, 8, 7)]   // what the others leave
    [InlineData(0.0, 8, 4, 4)]   // never more than the baseline
    [InlineData(6.6, 8, 8, 1)]
    public void ThreadsFollowWhatOtherProcessesLeave(double others, int cores, int baseline, int expected) =>
        Assert.Equal(expected, ThreadBudget.ThreadsFor(others, cores, baseline));

    [Fact]
    public void AUserChosenPolicyIsKept()
    {
        var env = new Dictionary<string, string> { ["OMP_WAIT_POLICY"] = "PASSIVE" };
        Assert.Null(ThreadBudget.ChooseWaitPolicy(k => env.GetValueOrDefault(k)));
    }

    [Fact]
    public void PinnedThreadsNeverSpin()
    {
        foreach (var pin in new[] { "OMP_NUM_THREADS", "PEFT_THREADS" })
        {
            var env = new Dictionary<string, string> { [pin] = "2" };
            Assert.Equal(("PASSIVE", (string?)null), ThreadBudget.ChooseWaitPolicy(k => env.GetValueOrDefault(k)));
        }
    }

    [Fact]
    public void ProcStatIsReadAsBusyTicksAndOwnTicks()
    {
        const string stat = "cpu  100 5 30 9000 40 7 3 2 0 0\ncpu0 50 2 15 4500 20 3 1 1 0 0\ncpu1 50 3 15 4500 20 4 2 1 0 0\nintr 1 2 3\n";
        Assert.Equal(100 + 5 + 30 + 7 + 3 + 2, CpuSample.ParseBusy(stat)); // idle (9000) and iowait (40) are not busy
        Assert.Equal(2, CpuSample.CountCpus(stat));
        // A command name with spaces and parentheses: fields count from the last ')'.
        Assert.Equal(17 + 4, CpuSample.ParseSelf("4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 900 0 3 0 17 4 0 0 20 0 9 0"));
    }

    [Fact]
    public void OthersAreTheMachinesBusyTimeLessOurOwn()
    {
        var t0 = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var a = new CpuSample(t0, Busy: 1000, Self: 400);
        var b = new CpuSample(t0.AddSeconds(2), Busy: 1000 + 300, Self: 400 + 180); // 300 ticks busy, 180 of them ours
        Assert.Equal(0.6, CpuSample.OthersBusy(a, b)!.Value, 6);                    // (300 - 180) / 100 Hz / 2 s
        Assert.Null(CpuSample.OthersBusy(b, b));
    }

    [Fact]
    public void PinFixesTheCountAndRejectsZero()
    {
        int now = TorchSharp.torch.get_num_threads(); // pinning the current count: other tests keep their threads
        ThreadBudget.Pin(now);
        Assert.False(ThreadBudget.Adaptive);
        Assert.Equal(now, ThreadBudget.Fit());
        Assert.Throws<ArgumentException>(() => ThreadBudget.Pin(0));
    }
}
