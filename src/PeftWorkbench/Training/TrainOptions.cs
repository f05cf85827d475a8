using TorchSharp;

namespace PeftWorkbench.Training;

/// <summary>When the learning-rate schedule advances: once per epoch (the study, timm's default) or once per optimizer step.</summary>
public enum ScheduleStepping { PerEpoch, PerStep }

/// <summary>
/// Everything <see cref="Trainer.Fit"/> needs besides the model and the data. Defaults are the study's
/// optimizer settings (AdamW, lr 1e-3, wd 1e-4, batch 64, cosine with linear warmup from 1e-6 to a floor of 1e-5,
/// seed 42); <see cref="ForProfile"/> sizes the budget.
/// </summary>
public sealed record TrainOptions
{
    public int Epochs { get; init; } = 10;
    public int BatchSize { get; init; } = 64;
    /// <summary>Peak (base) learning rate, reached at the end of warmup.</summary>
    public double Lr { get; init; } = 1e-3;
    public double WeightDecay { get; init; } = 1e-4;
    /// <summary>"adamw" (decoupled decay) or "sgd" (momentum 0.9, L2 decay).</summary>
    public string Optimizer { get; init; } = "adamw";
    public int WarmupEpochs { get; init; }
    public double WarmupLr { get; init; } = 1e-6;
    public double MinLr { get; init; } = 1e-5;
    public ScheduleStepping Stepping { get; init; } = ScheduleStepping.PerEpoch;
    public double LabelSmoothing { get; init; }
    /// <summary>Max global L2 norm of the gradients; 0 turns clipping off.</summary>
    public double ClipGradNorm { get; init; }
    /// <summary>Evaluate every N epochs (and always after the last); 0 = only after the last epoch.</summary>
    public int EvalEvery { get; init; }
    public long Seed { get; init; } = 42;
    /// <summary>Where to compute; null = <see cref="Workbench.Device"/>. The model is moved there.</summary>
    public torch.Device? Device { get; init; }
    public bool Shuffle { get; init; } = true;
    /// <summary>Compute in bfloat16 with float32 master weights and optimizer state (see Bf16Masters); the model
    /// is float32 again afterwards. Off by default: same-seed runs then repeat bit for bit against fp32 baselines.</summary>
    public bool Bf16 { get; init; }

    public static IReadOnlyList<string> Profiles { get; } = new[] { "smoke", "default", "mini-full", "paper" };

    /// <summary>
    /// Budgets per profile. paper = the study (100 epochs, 10 warmup, batch 64, per-epoch schedule).
    /// default = one method on one mini task (2 tune runs + the final run) in about 20 s on 2 cores: 5 epochs,
    /// warmup over the first epoch's steps (per-step stepping: a whole warmup epoch at 1e-6 would waste a fifth
    /// of the budget). mini-full = the study's schedule shape at mini scale (20 epochs, 2 warmup, per-epoch
    /// stepping): about 8x the default budget per run, for measuring what the short default costs and for
    /// overnight sweeps. smoke = seconds (what CI runs): 1 epoch. Profiles change budgets, never code paths.
    /// </summary>
    public static TrainOptions ForProfile(string profile) => profile switch
    {
        "smoke" => new TrainOptions { Epochs = 1, WarmupEpochs = 0, BatchSize = 64 },
        "default" => new TrainOptions { Epochs = 5, WarmupEpochs = 1, BatchSize = 64, Stepping = ScheduleStepping.PerStep },
        "mini-full" => new TrainOptions { Epochs = 20, WarmupEpochs = 2, BatchSize = 64 },
        "paper" => new TrainOptions { Epochs = 100, WarmupEpochs = 10, BatchSize = 64 },
        _ => throw new ArgumentException($"Unknown profile '{profile}'. Known profiles: {string.Join(", ", Profiles)}.", nameof(profile)),
    };

    public void Validate()
    {
        if (Epochs <= 0) throw new ArgumentException($"TrainOptions.Epochs must be positive, got {Epochs}.");
        if (BatchSize <= 0) throw new ArgumentException($"TrainOptions.BatchSize must be positive, got {BatchSize}.");
        if (WarmupEpochs < 0 || WarmupEpochs > Epochs) throw new ArgumentException($"TrainOptions.WarmupEpochs must be in [0, Epochs={Epochs}], got {WarmupEpochs}.");
        if (!(Lr > 0) || double.IsInfinity(Lr)) throw new ArgumentException($"TrainOptions.Lr must be positive and finite, got {Lr}.");
        if (WeightDecay < 0) throw new ArgumentException($"TrainOptions.WeightDecay must be >= 0, got {WeightDecay}.");
        if (Optimizer is not ("adamw" or "sgd")) throw new ArgumentException($"TrainOptions.Optimizer must be 'adamw' or 'sgd', got '{Optimizer}'.");
        if (LabelSmoothing is < 0 or >= 1) throw new ArgumentException($"TrainOptions.LabelSmoothing must be in [0, 1), got {LabelSmoothing}.");
        if (ClipGradNorm < 0) throw new ArgumentException($"TrainOptions.ClipGradNorm must be >= 0, got {ClipGradNorm}.");
        if (EvalEvery < 0) throw new ArgumentException($"TrainOptions.EvalEvery must be >= 0, got {EvalEvery}.");
        if (WarmupLr < 0 || MinLr < 0) throw new ArgumentException($"TrainOptions.WarmupLr and MinLr must be >= 0, got {WarmupLr}, {MinLr}.");
    }
}
