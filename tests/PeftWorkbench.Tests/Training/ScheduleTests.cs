using PeftWorkbench.Training;

namespace PeftWorkbench.Tests.Training;

public class ScheduleTests
{
    // base 1e-3, 10 epochs, 2 warmup from 1e-6, floor 1e-5. Hand values:
    //   t=0: 1e-6; t=1: 1e-6 + 1 * (1e-3 - 1e-6) / 2 = 5.005e-4
    //   t=2: 1e-5 + 0.5 * 9.9e-4 * (1 + cos(0.2 pi) = 1.809017) = 9.054634e-4
    //   t=5: 1e-5 + 0.5 * 9.9e-4 * (1 + 0) = 5.05e-4;  t=10 and later: 1e-5
    [Theory]
    [InlineData(0, 1e-6)]
    [InlineData(1, 5.005e-4)]
    [InlineData(2, 9.054634e-4)]
    [InlineData(5, 5.05e-4)]
    [InlineData(9, 3.4227024e-5)] // 1e-5 + 0.5 * 9.9e-4 * (1 + cos(0.9 pi) = 0.0489435)
    [InlineData(10, 1e-5)]
    [InlineData(50, 1e-5)]
    public void PerEpochMatchesHandComputedValues(int epoch, double expected)
    {
        var s = CosineWarmupSchedule.For(new TrainOptions { Lr = 1e-3, Epochs = 10, WarmupEpochs = 2 }, stepsPerEpoch: 13);
        Assert.Equal(expected, s.At(epoch), 9);
    }

    [Fact]
    public void PerStepScalesWarmupAndLengthBySteps()
    {
        var o = new TrainOptions { Lr = 1e-3, Epochs = 10, WarmupEpochs = 2, Stepping = ScheduleStepping.PerStep };
        var s = CosineWarmupSchedule.For(o, stepsPerEpoch: 3);
        Assert.Equal(30, s.TotalSteps);
        Assert.Equal(6, s.WarmupSteps);
        Assert.Equal(1e-6 + 3 * (1e-3 - 1e-6) / 6, s.At(3), 12);
        Assert.Equal(1e-5 + 0.5 * 9.9e-4 * (1 + Math.Cos(Math.PI * 15 / 30)), s.At(15), 12);
        Assert.Equal(5.05e-4, s.At(15), 9);
    }

    [Fact]
    public void NoWarmupStartsAtBaseLr()
    {
        var s = new CosineWarmupSchedule(0.01, 4, 0, 1e-6, 0);
        Assert.Equal(0.01, s.At(0), 12);
        Assert.Equal(0.005, s.At(2), 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.At(-1));
    }

    [Fact]
    public void PaperProfileIsTheStudys()
    {
        var p = TrainOptions.ForProfile("paper");
        Assert.Equal((100, 10, 64, 1e-6, 1e-5, "adamw", 42L), (p.Epochs, p.WarmupEpochs, p.BatchSize, p.WarmupLr, p.MinLr, p.Optimizer, p.Seed));
        Assert.Throws<ArgumentException>(() => TrainOptions.ForProfile("huge"));
        Assert.True(TrainOptions.ForProfile("smoke").Epochs < TrainOptions.ForProfile("default").Epochs);
    }
}
