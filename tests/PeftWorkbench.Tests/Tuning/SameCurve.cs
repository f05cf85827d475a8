namespace PeftWorkbench.Tests.Tuning;

/// <summary>Two training-loss curves of the same seed and schedule. Equal to 1e-6 relative, not bit for bit: the trainer
/// picks its torch thread count per epoch by the machine's load (ThreadBudget.Fit), and the test classes running beside
/// one another change that load, so a reduction can add in another order (seen: 0.716171493 against 0.716171498).</summary>
static class SameCurve
{
    public static void Equal(IReadOnlyList<double>? expected, IReadOnlyList<double>? actual)
    {
        Assert.NotNull(expected);
        Assert.NotNull(actual);
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-6 * Math.Max(1, Math.Abs(expected[i])),
                $"epoch {i + 1}: {expected[i]:R} against {actual[i]:R}");
    }
}
