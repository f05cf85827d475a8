using System.Diagnostics;
using PeftWorkbench.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Training;

/// <summary>
/// The one training loop: every method, the linear probe and upstream pre-training go through <see cref="Fit"/>.
/// Only parameters with requires_grad train (PEFT methods freeze the rest). Every step runs in its own dispose
/// scope, so memory stays flat; with the same seed a CPU run repeats bit for bit.
/// Cancellation does not throw: the run stops at the next step and returns a history marked Cancelled (so a
/// notebook keeps the curves so far); callers that store results must check <see cref="TrainHistory.Completed"/>.
/// </summary>
public static class Trainer
{
    /// <summary>The one public way in: image sets, checked as <see cref="Images"/> does, then the loop. (Protocol.RunTrial,
    /// which keeps the last epoch's evaluation, hands the loop its examples through the same check itself.)</summary>
    public static TrainHistory Fit(nn.Module<Tensor, Tensor> model, ImageSet train, ImageSet? eval, TrainOptions options,
        IProgress<TrainProgress>? progress = null, CancellationToken cancel = default)
    {
        var trainExamples = Images(train, nameof(train));
        var evalExamples = eval is null ? null : Images(eval, nameof(eval));
        return Fit(model, trainExamples, evalExamples, options, progress, cancel);
    }

    /// <summary>The loop itself, on any inputs [N, ...] (images, or cached features for the linear probe). With
    /// <paramref name="takeLastEval"/>, the last epoch's evaluation (logits, labels) goes to it, which then owns it.</summary>
    internal static TrainHistory Fit(nn.Module<Tensor, Tensor> model, Examples train, Examples? eval, TrainOptions options,
        IProgress<TrainProgress>? progress, CancellationToken cancel, Action<EvalResult>? takeLastEval = null)
    {
        options.Validate();
        CheckLabels(train, nameof(train));
        if (eval is not null) CheckLabels(eval, nameof(eval));
        var device = options.Device ?? Workbench.Device;
        model.to(device);

        var (decay, noDecay) = WeightDecayGroups.Split(model, options.WeightDecayRule);
        if (decay.Count + noDecay.Count == 0)
            throw new ArgumentException("Trainer.Fit: the model has no trainable parameters (requires_grad is false everywhere).");
        long trainableParams = decay.Concat(noDecay).Sum(p => p.Param.numel());

        torch.manual_seed(options.Seed);
        using var shuffleGen = new Generator((ulong)options.Seed);
        // bf16: the optimizer owns float32 masters (same names, same decay split); the model computes in bf16.
        using var mixed = options.Bf16 ? new Bf16Masters(model) : null;
        if (mixed is not null)
        {
            var masterOf = mixed.Masters.ToDictionary(m => m.Name, m => m.Master);
            decay = decay.Select(p => (p.Name, masterOf[p.Name])).ToList();
            noDecay = noDecay.Select(p => (p.Name, masterOf[p.Name])).ToList();
        }
        var trainable = decay.Concat(noDecay).Select(p => p.Param).ToList();
        using var optimizer = MakeOptimizer(options, decay.Select(p => p.Param), noDecay.Select(p => p.Param));
        try
        {
            return Loop(model, train, eval, options, progress, cancel, takeLastEval, device, trainable, trainableParams, shuffleGen, optimizer, mixed);
        }
        finally { mixed?.Restore(); }
    }

    static TrainHistory Loop(nn.Module<Tensor, Tensor> model, Examples train, Examples? eval, TrainOptions options,
        IProgress<TrainProgress>? progress, CancellationToken cancel, Action<EvalResult>? takeLastEval, Device device,
        List<Parameter> trainable, long trainableParams, Generator shuffleGen, optim.Optimizer optimizer, Bf16Masters? mixed)
    {
        long n = train.Count;
        if (n == 0) throw new ArgumentException($"Trainer.Fit: training set '{train.Name}' is empty.");
        int stepsPerEpoch = StepsPerEpoch(n, options);
        int epochsRun = options.EpochsRun; // the schedule spans options.Epochs; a rung stops before its end
        long totalSteps = (long)stepsPerEpoch * epochsRun;
        var schedule = CosineWarmupSchedule.For(options, stepsPerEpoch);

        var epochs = new List<EpochRecord>();
        bool diverged = false, cancelled = false;
        double? bestTop1 = null, lastTop1 = null; int? bestEpoch = null;
        long step = 0, imagesSeen = 0;
        double trainSeconds = 0, lastLoss = double.NaN, lr = schedule.At(0);
        var wall = Stopwatch.StartNew();

        for (int epoch = 0; epoch < epochsRun && !diverged && !cancelled; epoch++)
        {
            var epochClock = Stopwatch.StartNew();
            ThreadBudget.Fit(); // threads for what the cores look like now (a spinning process backs off under load)
            model.train();
            double epochLr = options.Stepping switch
            {
                ScheduleStepping.PerEpoch => schedule.At(epoch),
                // timm's scheduler.step(epoch) at the end of epoch e sets lr(e) for epoch e + 1; epoch 0 runs at lr(0).
                ScheduleStepping.TimmEpoch => schedule.At(Math.Max(epoch - 1, 0)),
                _ => schedule.At((int)step),
            };
            using var order = options.Shuffle ? torch.randperm(n, generator: shuffleGen) : torch.arange(n);
            double lossSum = 0; long lossCount = 0;

            for (int s = 0; s < stepsPerEpoch; s++)
            {
                if (cancel.IsCancellationRequested) { cancelled = true; break; }
                lr = options.Stepping == ScheduleStepping.PerStep ? schedule.At((int)step) : epochLr;
                foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;

                var stepClock = Stopwatch.StartNew();
                double loss;
                long batch;
                using (var scope = torch.NewDisposeScope())
                {
                    var idx = order.narrow(0, (long)s * options.BatchSize, Math.Min(options.BatchSize, n - (long)s * options.BatchSize));
                    batch = idx.shape[0];
                    var x = train.Inputs.index_select(0, idx).to(device);
                    if (options.Augment != ImageAugment.None) x = Augment.Apply(x, options.Augment, shuffleGen);
                    if (mixed is not null && x.is_floating_point()) x = x.to(ScalarType.BFloat16);
                    var y = train.Labels.index_select(0, idx).to(device);
                    optimizer.zero_grad();
                    mixed?.ZeroModelGrads();
                    var logits = model.call(x);
                    if (logits.dtype != ScalarType.Float32) logits = logits.to(ScalarType.Float32);
                    if (step == 0) CheckLogits(logits, batch, train);
                    var lossT = nn.functional.cross_entropy(logits, y, label_smoothing: options.LabelSmoothing);
                    loss = lossT.item<float>();
                    // Every profile: a non-finite loss ends the trial as "diverged" (the study skips the batch and goes on).
                    if (!double.IsFinite(loss)) { diverged = true; lastLoss = loss; }
                    else
                    {
                        lossT.backward();
                        mixed?.GradsToMasters();
                        if (options.ClipGradNorm > 0) nn.utils.clip_grad_norm_(trainable, options.ClipGradNorm);
                        optimizer.step();
                        mixed?.MastersToModel();
                    }
                }
                trainSeconds += stepClock.Elapsed.TotalSeconds;
                if (diverged) break;
                step++; imagesSeen += batch;
                lossSum += loss * batch; lossCount += batch; lastLoss = lossSum / lossCount;
                progress?.Report(new TrainProgress("train", epoch, epochsRun, s + 1, stepsPerEpoch, step, totalSteps,
                    lastLoss, lr, imagesSeen / Math.Max(trainSeconds, 1e-9), null, wall.Elapsed.TotalSeconds));
            }
            if (diverged || cancelled) break;

            double? top1 = null;
            bool last = epoch == epochsRun - 1;
            if (eval is not null && (last || (options.EvalEvery > 0 && (epoch + 1) % options.EvalEvery == 0)))
            {
                var result = Evaluate(model, eval, options.BatchSize * 2, device);
                top1 = result.Top1;
                // The last evaluation's logits can go to the caller (the protocol saves test predictions) instead of a second pass.
                if (last && takeLastEval is not null) takeLastEval(result); else result.Dispose();
                if (bestTop1 is null || top1 > bestTop1) { bestTop1 = top1; bestEpoch = epoch; }
                if (last) lastTop1 = top1;
                progress?.Report(new TrainProgress("eval", epoch, epochsRun, stepsPerEpoch, stepsPerEpoch, step, totalSteps,
                    lastLoss, lr, imagesSeen / Math.Max(trainSeconds, 1e-9), top1, wall.Elapsed.TotalSeconds));
            }
            epochs.Add(new EpochRecord(epoch, lossSum / Math.Max(lossCount, 1), epochLr, top1, epochClock.Elapsed.TotalSeconds));
        }
        model.eval();

        string phase = diverged ? "diverged" : cancelled ? "cancelled" : "done";
        double ips = imagesSeen / Math.Max(trainSeconds, 1e-9);
        progress?.Report(new TrainProgress(phase, Math.Max(epochs.Count - 1, 0), epochsRun, stepsPerEpoch, stepsPerEpoch, step, totalSteps,
            lastLoss, lr, ips, lastTop1, wall.Elapsed.TotalSeconds));
        return new TrainHistory
        {
            Epochs = epochs, PlannedEpochs = epochsRun, Diverged = diverged, Cancelled = cancelled,
            LastEvalTop1 = lastTop1, BestEvalTop1 = bestTop1, BestEpoch = bestEpoch,
            WallSeconds = wall.Elapsed.TotalSeconds, ImagesPerSecond = ips, TrainableParams = trainableParams, Steps = step,
        };
    }

    /// <summary>Optimizer steps per epoch: ceil(n / batch), or floor with DropLast (the study's loader) when one full batch fits.</summary>
    public static int StepsPerEpoch(long n, TrainOptions options) =>
        (int)(options.DropLast && n >= options.BatchSize ? n / options.BatchSize : (n + options.BatchSize - 1) / options.BatchSize);

    /// <summary>Top-1 (percent), logits and labels of <paramref name="model"/> on <paramref name="set"/>, in eval mode
    /// under no_grad; the model's train/eval mode is restored afterwards. Device: the model's (its first parameter's).</summary>
    public static EvalResult Evaluate(nn.Module<Tensor, Tensor> model, ImageSet set, int batchSize = 128)
    {
        CheckImages(set, nameof(set));
        return Evaluate(model, Examples.Of(set), batchSize, model.parameters().FirstOrDefault()?.device ?? torch.CPU);
    }

    internal static EvalResult Evaluate(nn.Module<Tensor, Tensor> model, Examples set, int batchSize, Device device)
    {
        if (batchSize <= 0) throw new ArgumentException($"Evaluate: batch size must be positive, got {batchSize}.");
        CheckLabels(set, nameof(set));
        bool wasTraining = model.training;
        ThreadBudget.Fit();
        // Inputs follow the model's dtype (bf16 during a bf16 run); logits come back as float32.
        var dtype = model.parameters().FirstOrDefault(p => p.is_floating_point())?.dtype ?? ScalarType.Float32;
        model.eval();
        try
        {
            var chunks = new List<Tensor>();
            long n = set.Count;
            using (torch.no_grad())
            {
                for (long i = 0; i < n; i += batchSize)
                {
                    using var scope = torch.NewDisposeScope();
                    var x = set.Inputs.narrow(0, i, Math.Min(batchSize, n - i)).to(device);
                    if (x.is_floating_point() && x.dtype != dtype) x = x.to(dtype);
                    chunks.Add(model.call(x).to(torch.float32).cpu().MoveToOuterDisposeScope());
                }
            }
            using var _ = torch.NewDisposeScope();
            var logits = chunks.Count > 0 ? torch.cat(chunks, 0) : torch.zeros(0, set.NumClasses);
            foreach (var c in chunks) c.Dispose();
            var labels = set.Labels.cpu().clone();
            double top1 = n == 0 ? 0 : logits.argmax(1).eq(labels).sum().item<long>() * 100.0 / n;
            return new EvalResult(top1, logits.MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope());
        }
        finally { model.train(wasTraining); }
    }

    /// <summary>The trainer's optimizer: two groups, weight decay on matrices and none on the rest (see
    /// WeightDecayGroups); AdamW on flat buffers (<see cref="FlatAdamW"/>) unless <see cref="TrainOptions.FlatAdamW"/>
    /// is false, which gives TorchSharp's per-tensor AdamW (the same update, to float32 rounding).</summary>
    internal static optim.Optimizer MakeOptimizer(TrainOptions o, IEnumerable<Parameter> decay, IEnumerable<Parameter> noDecay)
    {
        if (o.Optimizer == "sgd")
            return new MomentumSgd(new[]
            {
                new SGD.ParamGroup(decay.ToList(), lr: o.Lr, momentum: 0.9, weight_decay: o.WeightDecay),
                new SGD.ParamGroup(noDecay.ToList(), lr: o.Lr, momentum: 0.9, weight_decay: 0),
            }, o.Lr);
        var groups = new[]
        {
            new AdamW.ParamGroup(decay.ToList(), lr: o.Lr, weight_decay: o.WeightDecay),
            new AdamW.ParamGroup(noDecay.ToList(), lr: o.Lr, weight_decay: 0),
        };
        return o.FlatAdamW ? new FlatAdamW(groups, o.Lr) : torch.optim.AdamW(groups, o.Lr);
    }

    // cross_entropy on a target >= K is a libtorch error best caught here with names, before backward.
    static void CheckLogits(Tensor logits, long batch, Examples set)
    {
        if (logits.dim() != 2 || logits.shape[0] != batch)
            throw new ArgumentException($"Trainer.Fit: the model must return logits [B, K]; got [{string.Join(", ", logits.shape)}].");
        if (logits.shape[1] < set.NumClasses)
            throw new ArgumentException($"Trainer.Fit: the model returns {logits.shape[1]} logits but '{set.Name}' has {set.NumClasses} classes (reset the head?).");
    }

    /// <summary>An image set as the loop's examples, refused (naming it as <paramref name="what"/>) unless its images are [N, C, H, W].</summary>
    internal static Examples Images(ImageSet set, string what)
    {
        CheckImages(set, what);
        return Examples.Of(set);
    }

    static void CheckImages(ImageSet set, string what)
    {
        if (set.Images.dim() != 4) throw new ArgumentException($"{what} '{set.Name}': images must be [N, C, H, W], got [{string.Join(", ", set.Images.shape)}].");
    }

    static void CheckLabels(Examples set, string what)
    {
        if (set.Labels.dim() != 1 || set.Labels.shape[0] != set.Inputs.shape[0])
            throw new ArgumentException($"{what} '{set.Name}': labels [{string.Join(", ", set.Labels.shape)}] do not match {set.Inputs.shape[0]} inputs.");
        if (set.Labels.dtype != ScalarType.Int64) throw new ArgumentException($"{what} '{set.Name}': labels must be int64, got {set.Labels.dtype}.");
        if (set.Count > 0)
        {
            using var scope = torch.NewDisposeScope();
            long min = set.Labels.min().item<long>(), max = set.Labels.max().item<long>();
            if (min < 0 || max >= set.NumClasses)
                throw new ArgumentException($"{what} '{set.Name}': labels span [{min}, {max}] but NumClasses is {set.NumClasses}.");
        }
    }
}

/// <summary>What the loop consumes: inputs [N, ...] and int64 labels [N] (an image set's or a feature cache's; not owned).</summary>
internal sealed record Examples(Tensor Inputs, Tensor Labels, int NumClasses, string Name)
{
    public long Count => Labels.shape[0];
    public static Examples Of(ImageSet s) => new(s.Images, s.Labels, s.NumClasses, s.Name);
}
