using PeftWorkbench.Data;
using PeftWorkbench.Tests.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using SkiaSharp;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>Study.Run, the one run API, end to end on a tiny VTAB-1K-shaped folder.</summary>
public class StudyRunTests
{
    /// <summary>root/eurosat with 3 / 1 / 4 / 2 PNGs (labels 0 and 3), as the processed VTAB-1K folders are laid out.</summary>
    internal static string TinyVtab(TempDir dir)
    {
        var task = Path.Combine(dir.Path, "eurosat");
        Directory.CreateDirectory(Path.Combine(task, "images"));
        for (int i = 0; i < 6; i++)
        {
            using var bmp = new SKBitmap(12, 12);
            bmp.Erase(i % 2 == 0 ? SKColors.Red : SKColors.Blue);
            using var img = SKImage.FromBitmap(bmp);
            using var data = img.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(task, "images", $"{i}.png"), data.ToArray());
        }
        string L(int i) => $"images/{i}.png {(i % 2 == 0 ? 0 : 3)}";
        File.WriteAllLines(Path.Combine(task, "train800.txt"), new[] { L(0), L(1), L(2) });
        File.WriteAllLines(Path.Combine(task, "val200.txt"), new[] { L(3) });
        File.WriteAllLines(Path.Combine(task, "train800val200.txt"), new[] { L(0), L(1), L(2), L(3) });
        File.WriteAllLines(Path.Combine(task, "test.txt"), new[] { L(4), L(5) });
        return dir.Path;
    }

    [Fact]
    public void PaperProfileOnAVtabFolderFollowsTheStudysProtocol()
    {
        using var dir = new TempDir();
        var root = TinyVtab(dir);
        var store = Path.Combine(dir.Path, "store");
        using var run = Study.Run("eurosat", "linear", "paper", store: store, suite: "vtab:" + root, checkpoint: "none", preset: "mini");

        // The paper rows: the study's grid in its order, 100 epochs, timm stepping, wd on every tuned tensor,
        // last-of-ties selection, drop_last, the probe through the backbone in train mode.
        Assert.Equal(new[] { (1e-3, 1e-4), (1e-3, 1e-3), (1e-2, 1e-4), (1e-2, 1e-3) }, run.Tuning.Select(t => (t.Config.Lr, t.Config.WeightDecay)));
        Assert.All(run.Tuning.Append(run.Final), t => Assert.Equal(("ok", 100), (t.Status, t.Epochs)));
        Assert.Equal((ScheduleStepping.TimmEpoch, WeightDecayRule.EveryTunedTensor, true),
            (run.Options.Train.Stepping, run.Options.Train.WeightDecayRule, run.Options.Train.DropLast));
        Assert.Equal((TieBreak.LastOfTiedInGridOrder, LinearProbePath.BackboneInTrainMode), (run.Options.TieBreak, run.Options.LinearProbe));
        double best = run.Tuning.Max(t => t.Top1Last!.Value);
        Assert.Equal(run.Tuning.Last(t => t.Top1Last == best).Key, run.Selected!.Key);
        Assert.Equal(run.Selected.Config.Lr, run.Final.Config.Lr);

        // Pixels in [0, 1] (the study's normalized: False): a red image reads 1, 0, 0.
        using (var task = Study.Environment.LoadTask(new RunSetup("vtab:" + root, "paper", "vtab1k", PeftWorkbench.Vit.VitConfig.Preset("mini")), "eurosat"))
            Assert.Equal(new[] { 1f, 0f, 0f }, task.Train800.Images[0, .., 0, 0].data<float>().ToArray());

        // Every trial saved the predictions of its scored split (tune: val, final: test); the run hands back the test logits.
        Assert.All(run.Tuning.Append(run.Final), t => Assert.True(File.Exists(Path.Combine(store, t.Predictions!))));
        Assert.Equal(new long[] { 2, 10 }, run.Test!.Logits.shape);
        var val = Study.LoadPredictions(new ResultsStore(store), run.Tuning[0])!;
        using (val) Assert.Equal(new long[] { 1, 10 }, val.Logits.shape);
    }

    [Fact]
    public void ATypoInAHyperparameterIsRefusedBeforeTheTaskLoads()
    {
        var e = Assert.Throws<ArgumentException>(() => Study.Run("no-such-task", "lora", hp: new Dictionary<string, string> { ["lora_bottlenek"] = "4" }));
        Assert.Contains("lora_bottlenek", e.Message);
        Assert.Contains("lora_bottleneck", e.Message);
        // Out of range for the backbone (the mini ViT is 128 wide).
        e = Assert.Throws<ArgumentException>(() => Study.Run("no-such-task", "lora", hp: new Dictionary<string, string> { ["lora_bottleneck"] = "100000" }));
        Assert.Contains("lora_bottleneck", e.Message);
        Assert.Throws<ArgumentException>(() => Study.Run("mnist", "lora", profile: "fast"));
    }

    [Fact]
    public void ASeedGivesItsOwnTrialsAndTheSameSeedTheSameNumbers()
    {
        using var dir = new TempDir();
        var root = TinyVtab(dir);
        var hp = new Dictionary<string, string>();
        // Separate stores: a second run of the same seed trains again instead of reading the first one's trials.
        StudyRun Go(long? seed, string name) => Study.Run("eurosat", "lora", "smoke", hp: hp, store: Path.Combine(dir.Path, name),
            suite: "vtab:" + root, checkpoint: "none", preset: "mini", seed: seed);
        using var profileSeed = Go(null, "profile");
        using var a = Go(7, "a");
        using var b = Go(7, "b");
        Assert.Contains("seed=42", profileSeed.Final.Key);
        Assert.Contains("seed=7", a.Final.Key);
        Assert.All(a.Tuning.Append(a.Final), t => Assert.Equal(7, t.Config.Seed));
        Assert.Equal(a.Test!.Logits.data<float>().ToArray(), b.Test!.Logits.data<float>().ToArray());
        Assert.NotEqual(a.Test.Logits.data<float>().ToArray(), profileSeed.Test!.Logits.data<float>().ToArray());
    }

    [Fact]
    public void RunAllReturnsTasksTimesMethodsInOrderAndASecondCallTrainsNothing()
    {
        using var dir = new TempDir();
        var root = TinyVtab(dir);
        var store = Path.Combine(dir.Path, "store");
        var lines = new List<string>();
        IReadOnlyList<StudyRun> Go() => Study.RunAll(new[] { "eurosat" }, new[] { "linear", "bitfit" }, "smoke", store: store,
            suite: "vtab:" + root, checkpoint: "none", preset: "mini", progress: lines.Add);
        var first = Go();
        Assert.Equal(new[] { "linear", "bitfit" }, first.Select(r => r.Method));
        Assert.Contains(lines, l => l.StartsWith("[2/2] eurosat bitfit"));
        var files = Directory.GetFiles(store, "*", SearchOption.AllDirectories).Select(f => (f, File.GetLastWriteTimeUtc(f))).ToList();
        // Read back from the store alone: the task's images are not loaded again (they are gone now).
        Directory.Delete(Path.Combine(root, "eurosat", "images"), recursive: true);
        var second = Go();
        Assert.Equal(first.Select(r => (r.Final.Key, r.Final.Top1Last, r.Selected?.Key, r.Tuning.Count)), second.Select(r => (r.Final.Key, r.Final.Top1Last, r.Selected?.Key, r.Tuning.Count)));
        Assert.Equal(files, Directory.GetFiles(store, "*", SearchOption.AllDirectories).Select(f => (f, File.GetLastWriteTimeUtc(f))).ToList());
        foreach (var r in first.Concat(second)) r.Dispose();
        Assert.Throws<ArgumentException>(() => Study.RunAll(new[] { "eurosat" }, new[] { "lora", "no-such-method" }, "smoke", store: store));
    }

    /// <summary>The worker default (one per core, one thread each) and the wait policy by processes x threads vs cores.</summary>
    [Fact]
    public void WorkerPlanDefaultsToOneSingleThreadedWorkerPerCoreAndSpinsOnlyWithoutOversubscription()
    {
        Assert.Equal(new WorkerPlan(2, 1, 2), WorkerPlan.For(cores: 2, load: 0));
        Assert.Equal(new WorkerPlan(8, 1, 8), WorkerPlan.For(cores: 8, load: 0));
        Assert.Equal(new WorkerPlan(3, 2, 8), WorkerPlan.For(3, cores: 8, load: 0));
        Assert.Equal("PASSIVE", WorkerPlan.For(cores: 2, load: 0).WaitPolicy);      // one thread: no team to wait for
        Assert.Equal("ACTIVE", WorkerPlan.For(1, cores: 2, load: 0).WaitPolicy);    // 1 x 2 on 2 free cores: bounded spin
        Assert.Equal("PASSIVE", WorkerPlan.For(1, cores: 2, load: 0.5).WaitPolicy); // ... but not beside other work
        Assert.Equal("ACTIVE", WorkerPlan.For(3, cores: 8, load: 1.5).WaitPolicy);  // 3 x 2 + 2 on 8
        Assert.Equal("PASSIVE", WorkerPlan.For(2, 2, cores: 2, load: 0).WaitPolicy); // 2 x 2 on 2: oversubscribed
        Assert.Equal(1, WorkerPlan.For(cores: 8).Capped(1).Workers);
        Assert.Equal(2, WorkerPlan.For(cores: 2).Capped(100).Workers);
        Assert.Throws<ArgumentException>(() => WorkerPlan.For(0));
        var env = WorkerPlan.For(1, cores: 2, load: 0).WorkerEnvironment();
        Assert.Equal("2", env["OMP_NUM_THREADS"]);
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is { Length: > 0 })
            Assert.False(env.ContainsKey("OMP_WAIT_POLICY")); // the user's policy (the tests set PASSIVE) is inherited, not replaced
        else
            Assert.Equal(("ACTIVE", WorkerPlan.SpinCount), (env["OMP_WAIT_POLICY"], env.GetValueOrDefault("GOMP_SPINCOUNT", WorkerPlan.SpinCount)));
    }

    /// <summary>Issue 26 item 10 for workers: more worker processes than cores are refused by the one bound --threads
    /// uses (ThreadBudget.CheckPerCore), in the plan and in Study.RunAll, before any trial is planned or recorded.</summary>
    [Fact]
    public void WorkersBeyondTheCoresAreRefusedLikeThreadsBeforeAnythingRuns()
    {
        var e = Assert.Throws<ArgumentException>(() => WorkerPlan.For(100000, cores: 2, load: 0));
        Assert.Equal("workers 100000: give 1 to 2 (the cores this machine lets this process use).", e.Message);
        Assert.Equal(e.Message.Replace("workers", "threads"), Assert.Throws<ArgumentException>(() => WorkerPlan.For(1, 100000, cores: 2, load: 0)).Message);
        Assert.Contains("workers 3: give 1 to 2", Assert.Throws<ArgumentException>(() => WorkerPlan.For(3, cores: 2, load: 0)).Message);
        using var dir = new TempDir();
        var store = Path.Combine(dir.Path, "store");
        var e2 = Assert.Throws<ArgumentException>(() => Study.RunAll(new[] { "toy-3" }, new[] { "linear" }, "smoke", store: store, suite: "toy", workers: 100000));
        Assert.StartsWith("workers 100000: give 1 to ", e2.Message);
        Assert.False(File.Exists(Path.Combine(store, "trials.jsonl")));
    }

    /// <summary>Issue 16's bf16 bounds on one small task: fp32 and bf16 runs of the same seed (LoRA on the shipped mini
    /// checkpoint, smoke) end within the worst-pair bound (1.0 top-1 points) of each other, and each mode repeats
    /// itself exactly.</summary>
    [Fact]
    public void Bf16StaysWithinTheAccuracyBoundOfFp32AndEachModeIsDeterministic()
    {
        using var dir = new TempDir();
        var hp = new Dictionary<string, string>();
        StudyRun Go(bool bf16, string name) => Study.Run("mnist", "lora", "smoke", hp: hp, store: Path.Combine(dir.Path, name), bf16: bf16, seed: 3);
        using var fp32 = Go(false, "fp32-a");
        using var fp32Again = Go(false, "fp32-b");
        using var bf16 = Go(true, "bf16-a");
        using var bf16Again = Go(true, "bf16-b");
        Assert.Equal(fp32.Test!.Logits.data<float>().ToArray(), fp32Again.Test!.Logits.data<float>().ToArray());
        Assert.Equal(bf16.Test!.Logits.data<float>().ToArray(), bf16Again.Test!.Logits.data<float>().ToArray());
        Assert.NotEqual(fp32.Test.Logits.data<float>().ToArray(), bf16.Test.Logits.data<float>().ToArray()); // bf16 really ran
        double diff = bf16.Final.Top1Last!.Value - fp32.Final.Top1Last!.Value;
        Assert.True(Math.Abs(diff) <= PeftWorkbench.Bench.Bf16Accuracy.WorstBound, $"bf16 {bf16.Final.Top1Last} vs fp32 {fp32.Final.Top1Last}");
    }
}
