namespace PeftWorkbench.Training;

/// <summary>
/// Cosine decay with linear warmup, as timm's CosineLRScheduler (warmup_prefix off, one cycle) that the study uses:
/// for t &lt; W: lr = warmupLr + t (base - warmupLr) / W; else lr = minLr + (base - minLr) (1 + cos(pi t / T)) / 2,
/// and minLr from t = T on. t counts epochs (per-epoch stepping) or optimizer steps (per-step stepping, where
/// W and T are scaled by steps per epoch). Note the cosine runs over the whole of T, warmup included, exactly as timm.
/// </summary>
public sealed record CosineWarmupSchedule(double BaseLr, int TotalSteps, int WarmupSteps, double WarmupLr, double MinLr)
{
    /// <summary>The schedule a run with <paramref name="o"/> follows; steps are epochs or optimizer steps.</summary>
    public static CosineWarmupSchedule For(TrainOptions o, int stepsPerEpoch) =>
        o.Stepping != ScheduleStepping.PerStep
            ? new(o.Lr, o.Epochs, o.WarmupEpochs, o.WarmupLr, o.MinLr)
            : new(o.Lr, o.Epochs * stepsPerEpoch, o.WarmupEpochs * stepsPerEpoch, o.WarmupLr, o.MinLr);

    /// <summary>The learning rate used during step (or epoch) <paramref name="t"/>, counted from 0.</summary>
    public double At(int t)
    {
        if (t < 0) throw new ArgumentOutOfRangeException(nameof(t), t, "schedule time must be >= 0");
        if (t < WarmupSteps) return WarmupLr + t * (BaseLr - WarmupLr) / WarmupSteps;
        if (t >= TotalSteps) return MinLr;
        return MinLr + 0.5 * (BaseLr - MinLr) * (1 + Math.Cos(Math.PI * t / TotalSteps));
    }
}
