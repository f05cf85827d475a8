using TorchSharp;

namespace PeftWorkbench.Training;

/// <summary>When the learning-rate schedule advances.</summary>
public enum ScheduleStepping
{
    /// <summary>Once per epoch: epoch e runs at lr(e).</summary>
    PerEpoch,
    /// <summary>Once per optimizer step (warmup and cosine scaled by steps per epoch).</summary>
    PerStep,
    /// <summary>The study's: timm's CosineLRScheduler stepped with scheduler.step(epoch) at the end of each epoch
    /// (engine/trainer.py:37-39,151), so epoch e &gt;= 1 runs at lr(e-1) and epochs 0 and 1 both at the warmup start.</summary>
    TimmEpoch,
}

/// <summary>Which trainable tensors AdamW decays.</summary>
public enum WeightDecayRule
{
    /// <summary>The study's: plain AdamW over every tuned tensor (engine/optimizer.py:26-30).</summary>
    EveryTunedTensor,
    /// <summary>timm's rule: no decay on 1-D tensors (norms, biases, scales) nor on the tensors a module declares exempt
    /// (<see cref="Vit.INoWeightDecay"/>: the ViT's positions and class token, VPT's prompts); see WeightDecayGroups.</summary>
    TimmExemptions,
}

/// <summary>Training-time augmentation of image batches (the study's many-shot recipes).</summary>
public enum ImageAugment
{
    None,
    /// <summary>RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3) back to the image size, then a horizontal flip with p = 0.5 (cifar100.py:12-16).</summary>
    CropFlip,
    /// <summary>As CropFlip, plus a vertical flip with p = 0.5 (resisc.py:24-30).</summary>
    CropFlipVFlip,
}

/// <summary>
/// Everything <see cref="Trainer.Fit"/> needs besides the model and the data. Defaults: the study's AdamW settings
/// (lr 1e-3, wd 1e-4, batch 64, cosine with linear warmup from 1e-6 to a floor of 1e-5, seed 42), but not its budget,
/// stepping, weight-decay rule or drop_last; <see cref="ForProfile"/> takes all of those from the profile table
/// (Tuning/Profiles.cs), whose rows say where each profile differs from the study and why.
/// </summary>
public sealed record TrainOptions
{
    public int Epochs { get; init; } = 10;
    /// <summary>Train only the first N epochs of the <see cref="Epochs"/>-epoch schedule, the lr where the whole schedule
    /// has it, and score after the last of them: a rung of successive halving (the protocol's tune trials,
    /// ProtocolOptions.Rung). Null: all of them. Not part of <see cref="Budget"/>: the trial's key says where it stopped.</summary>
    public int? StopAfterEpochs { get; init; }
    /// <summary>The epochs this run trains: <see cref="StopAfterEpochs"/>, else <see cref="Epochs"/>.</summary>
    public int EpochsRun => StopAfterEpochs ?? Epochs;
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
    /// <summary>Drop the last partial batch of each epoch (the study's loader: drop_last=True).</summary>
    public bool DropLast { get; init; }
    public WeightDecayRule WeightDecayRule { get; init; } = WeightDecayRule.TimmExemptions;
    public ImageAugment Augment { get; init; } = ImageAugment.None;
    /// <summary>Compute in bfloat16 with float32 master weights and optimizer state (see Bf16Masters); the model
    /// is float32 again afterwards. Off by default: same-seed runs then repeat bit for bit against fp32 baselines.</summary>
    public bool Bf16 { get; init; }
    /// <summary>AdamW keeps parameters and state in one float32 buffer per weight-decay group and updates each group
    /// with a handful of ops (<see cref="Training.FlatAdamW"/>); false = TorchSharp's AdamW, tensor by tensor. Both
    /// give the same numbers to float32 rounding (FlatAdamWTests); the flat one is faster (`peft bench train --optimizers`).</summary>
    public bool FlatAdamW { get; init; } = true;

    /// <summary>Profile names (the table is Tuning/Profiles.cs).</summary>
    public static IReadOnlyList<string> Profiles => Tuning.Profiles.Names;

    /// <summary>The training options of a profile (see Tuning/Profiles.cs, the one profile table).</summary>
    public static TrainOptions ForProfile(string profile) => Tuning.Profiles.Get(profile).Train;

    /// <summary>What decides a run's numbers besides its lr, weight decay, seed, model and data, as one line (a results
    /// store keeps it per profile: ResultsStore.CheckBudget).</summary>
    public string Budget => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{Epochs} epochs, warmup {WarmupEpochs} from {WarmupLr:R}, min lr {MinLr:R}, schedule {Stepping}, batch {BatchSize}" +
        $"{(DropLast ? " (last partial dropped)" : "")}, {Optimizer} decay {WeightDecayRule}, augment {Augment}, label smoothing {LabelSmoothing:R}, " +
        $"clip {ClipGradNorm:R}, {(Bf16 ? "bf16" : "fp32")}");

    public void Validate()
    {
        if (Epochs <= 0) throw new ArgumentException($"TrainOptions.Epochs must be positive, got {Epochs}.");
        if (StopAfterEpochs is int stop && (stop < 1 || stop > Epochs)) throw new ArgumentException($"TrainOptions.StopAfterEpochs must be in [1, Epochs={Epochs}], got {stop}.");
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
