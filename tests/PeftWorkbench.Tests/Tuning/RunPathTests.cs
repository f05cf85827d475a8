using System.Diagnostics;
using System.Reflection;
using System.Runtime.CompilerServices;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>Issue 23: from a notebook's Study.RunAll to the optimizer step (the training loop in Trainer.Fit) is at most
/// 6 hops for a tune trial and for the final, counted as the library's named methods on the stack (lambdas and the
/// progress line above the loop left out).</summary>
public class RunPathTests(Xunit.Abstractions.ITestOutputHelper output)
{
    static int Hops(string path) => path.Split(" -> ").Length - 1;

    [Fact]
    public void A_trial_reaches_the_training_loop_in_at_most_6_hops_from_Study_RunAll()
    {
        using var tmp = new TempDir();
        var paths = new HashSet<string>();
        var library = typeof(Study).Assembly;
        Study.RunAll(new[] { "toy-3" }, new[] { "bitfit" }, "smoke", store: tmp.Path, suite: "toy", workers: 1, progress: _ =>
        {
            var frames = new StackTrace().GetFrames().Select(f => f.GetMethod()).OfType<MethodBase>()
                .Where(m => m.DeclaringType?.Assembly == library && !m.Name.Contains('<') && m.DeclaringType.IsDefined(typeof(CompilerGeneratedAttribute)) == false
                    && !(m.DeclaringType.DeclaringType?.IsDefined(typeof(CompilerGeneratedAttribute)) ?? false))
                .Select(m => $"{m.DeclaringType!.Name}.{m.Name}").ToList();
            int loop = frames.IndexOf("Trainer.Fit"); // innermost first: the loop itself
            int top = frames.IndexOf("Study.RunAll");
            // A val refit or final is reached through Protocol.Vtab1k's AfterTune (a local function, so not a hop): tag it.
            bool afterTune = new StackTrace().GetFrames().Any(f => f.GetMethod()?.Name.Contains("AfterTune", StringComparison.Ordinal) == true);
            if (loop >= 0 && top > loop) lock (paths) paths.Add((afterTune ? "final: " : "tune: ") + string.Join(" -> ", frames.GetRange(loop, top - loop + 1).AsEnumerable().Reverse()));
        }).ToList().ForEach(r => r.Dispose());
        // Tune trials and the final (smoke: no val refit) reach the loop in at most 6 hops, the final's selection made
        // inside Protocol.RunTrial (the one entry, which sweeps' workers call too).
        foreach (var p in paths) output.WriteLine($"{Hops(p)} hops: {p}");
        var tune = Assert.Single(paths, p => p.StartsWith("tune: ", StringComparison.Ordinal))["tune: ".Length..];
        var final = Assert.Single(paths, p => p.StartsWith("final: ", StringComparison.Ordinal))["final: ".Length..];
        Assert.All(new[] { tune, final }, p => Assert.StartsWith("Study.RunAll -> ", p));
        Assert.True(Hops(tune) <= 6, $"{Hops(tune)} hops: {tune}");
        Assert.True(Hops(final) <= 6, $"{Hops(final)} hops: {final}");
    }

    sealed class Synchronous(Action<TrainProgress> report) : IProgress<TrainProgress> { public void Report(TrainProgress p) => report(p); }

    /// <summary>A probe for a progress report from the loop: the first path from <paramref name="top"/> to Trainer.Fit (the
    /// library's named methods on the stack, outermost first) goes to <paramref name="found"/>.</summary>
    static Synchronous PathFrom(string top, Action<string> found)
    {
        var library = typeof(Study).Assembly;
        bool done = false;
        return new Synchronous(_ =>
        {
            if (done) return;
            var frames = new StackTrace().GetFrames().Select(f => f.GetMethod()).OfType<MethodBase>()
                .Where(m => m.DeclaringType?.Assembly == library && !m.Name.Contains('<') && m.DeclaringType.IsDefined(typeof(CompilerGeneratedAttribute)) == false
                    && !(m.DeclaringType.DeclaringType?.IsDefined(typeof(CompilerGeneratedAttribute)) ?? false))
                .Select(m => $"{m.DeclaringType!.Name}.{m.Name}").ToList();
            int loop = frames.IndexOf("Trainer.Fit"), outer = frames.IndexOf(top);
            if (loop >= 0 && outer > loop) { done = true; found(string.Join(" -> ", frames.GetRange(loop, outer - loop + 1).AsEnumerable().Reverse())); }
        });
    }

    /// <summary>Notebook 05's fine-tunings train through the protocol's one trial entry too (Protocol.RunTrial hands the
    /// selected model over instead of disposing it): no loop of their own.</summary>
    [Fact]
    public void A_robustness_fine_tuning_reaches_the_training_loop_through_Protocol_RunTrial()
    {
        string? path = null;
        var options = new TrainOptions { Epochs = 1, WarmupEpochs = 0, BatchSize = 64, WeightDecay = 1e-4 };
        using var tuned = PeftWorkbench.Analysis.Robustness.FineTuneSelected("bitfit", options, new PeftWorkbench.Analysis.Robustness.LrSelection(new[] { 1e-2 }),
            progress: PathFrom("Robustness.FineTuneSelected", p => path = p));
        output.WriteLine(path);
        Assert.Equal("Robustness.FineTuneSelected -> Protocol.RunTrial -> Trainer.Fit", path);
    }

    /// <summary>The fixed-lr fine-tuning (no selection: `peft analyze`'s robustness runs, the WiSE bench, a curve without an
    /// lr grid) is the protocol's final at given hyperparameters (Protocol.GivenFinal), run by Protocol.RunTrial too.</summary>
    [Fact]
    public void A_fixed_lr_robustness_fine_tuning_reaches_the_training_loop_through_Protocol_RunTrial()
    {
        string? path = null;
        var options = new TrainOptions { Epochs = 1, WarmupEpochs = 0, BatchSize = 64, Lr = 1e-2, WeightDecay = 1e-4 };
        using var run = PeftWorkbench.Analysis.Robustness.FineTune("bitfit", options, progress: PathFrom("Robustness.FineTune", p => path = p));
        output.WriteLine(path);
        Assert.Equal("Robustness.FineTune -> Protocol.RunTrial -> Trainer.Fit", path);
    }
}
