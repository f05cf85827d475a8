using static TorchSharp.torch;

namespace PeftWorkbench.Training;

/// <summary>One finished epoch: mean training loss, the learning rate it used (its first step's under per-step
/// stepping), and eval top-1 in percent when it was evaluated.</summary>
public sealed record EpochRecord(int Epoch, double Loss, double Lr, double? EvalTop1, double Seconds);

/// <summary>
/// What a <see cref="Trainer.Fit"/> run did. Top-1 values are percentages (0-100), as the study reports them.
/// A Diverged run stopped at the first NaN/Inf loss; a Cancelled run stopped at the first step after the token
/// fired. Either way the epochs completed before remain in <see cref="Epochs"/>.
/// </summary>
public sealed record TrainHistory
{
    public required IReadOnlyList<EpochRecord> Epochs { get; init; }
    public required int PlannedEpochs { get; init; }
    public bool Diverged { get; init; }
    public bool Cancelled { get; init; }
    /// <summary>Top-1 after the last planned epoch; null if not evaluated (no eval set, or stopped early).</summary>
    public double? LastEvalTop1 { get; init; }
    /// <summary>Highest eval top-1 over the evaluated epochs, and the epoch (0-based) where it was reached.</summary>
    public double? BestEvalTop1 { get; init; }
    public int? BestEpoch { get; init; }
    public required double WallSeconds { get; init; }
    /// <summary>Training images per second (forward + backward + update; evaluation time excluded).</summary>
    public required double ImagesPerSecond { get; init; }
    public required long TrainableParams { get; init; }
    public required long Steps { get; init; }

    public bool Completed => !Diverged && !Cancelled && Epochs.Count == PlannedEpochs;
    public double? FinalLoss => Epochs.Count > 0 ? Epochs[^1].Loss : null;
}

/// <summary>A progress report: sent after every optimizer step (Phase "train"), after each evaluation ("eval"),
/// and once at the end ("done", "diverged" or "cancelled").</summary>
public sealed record TrainProgress(
    string Phase, int Epoch, int Epochs, int Step, int StepsPerEpoch, long GlobalStep, long TotalSteps,
    double Loss, double Lr, double ImagesPerSecond, double? EvalTop1, double ElapsedSeconds);

/// <summary>Evaluation output: top-1 in percent, logits [N, K] and labels [N] on the CPU (owned: dispose).</summary>
public sealed record EvalResult(double Top1, Tensor Logits, Tensor Labels) : IDisposable
{
    public long Count => Labels.shape[0];
    public void Dispose() { Logits.Dispose(); Labels.Dispose(); }
}
