using PeftWorkbench.Tests.Data;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>A store answers only for the trials it holds: the backbone (checkpoint and its digest, shape), the data and
/// the precision are checked against it before any trial is read back (identity.json), bad inputs fail before anything
/// is recorded, and a failed trial is retried by the next run.</summary>
public class TrialIdentityTests
{
    static StudyRun Toy(string store, string? checkpoint = "none", string preset = "mini", bool bf16 = false, string task = "toy-3") =>
        Study.Run(task, "linear", "smoke", store: store, suite: "toy", checkpoint: checkpoint, preset: preset, bf16: bf16);

    static string Checkpoint(string dir, string name, long seed)
    {
        var path = Path.Combine(dir, name);
        using var vit = new VisionTransformer(VitConfig.Preset("mini"), seed: seed);
        VitWeights.Save(vit, path);
        return path;
    }

    [Fact]
    public void AnotherBackboneOrPrecisionIsRefusedBeforeAnyTrialIsReadBack()
    {
        using var dir = new TempDir();
        var store = Path.Combine(dir.Path, "store");
        DateTime finished;
        using (var first = Toy(store)) finished = first.Final.FinishedUtc;
        var trials = File.ReadAllText(Path.Combine(store, "trials.jsonl"));

        var ckpt = Checkpoint(dir.Path, "a.safetensors", seed: 1);
        var e = Assert.Throws<InvalidOperationException>(() => Toy(store, ckpt));
        Assert.Contains("smoke/vtab1k/toy-3", e.Message);
        Assert.Contains("checkpoint 'none' there, 'file' now", e.Message);
        e = Assert.Throws<InvalidOperationException>(() => Toy(store, preset: "mini-p4"));
        Assert.Contains("backbone '32px patch 8", e.Message);
        Assert.Contains("'32px patch 4", e.Message);
        e = Assert.Throws<InvalidOperationException>(() => Toy(store, bf16: true));
        Assert.Contains("precision 'float32' there, 'bf16' now", e.Message);
        Assert.Equal(trials, File.ReadAllText(Path.Combine(store, "trials.jsonl")));

        // The same backbone reads its trials back without training.
        using (var again = Toy(store)) Assert.Equal(finished, again.Final.FinishedUtc);

        // A checkpoint is known by its digest: another file with other weights is another backbone; a copy is the same.
        var other = Path.Combine(dir.Path, "other");
        using (var a = Toy(other, ckpt)) finished = a.Final.FinishedUtc;
        var copy = Path.Combine(dir.Path, "copy.safetensors");
        File.Copy(ckpt, copy);
        using (var b = Toy(other, copy)) Assert.Equal(finished, b.Final.FinishedUtc);
        e = Assert.Throws<InvalidOperationException>(() => Toy(other, Checkpoint(dir.Path, "b.safetensors", seed: 2)));
        Assert.Contains("checkpoint sha256", e.Message);
    }

    [Fact]
    public void ASweepOnAFinishedStoreWithAnotherCheckpointIsRefused()
    {
        using var dir = new TempDir();
        var store = Path.Combine(dir.Path, "store");
        var o = Profiles.Smoke.Vtab1k();
        var manifest = Sweep.Plan(store, "toy", new[] { "toy-3" }, new[] { "linear" }, o, VitConfig.Preset("mini"), Study.Environment, null);
        Sweep.RunWorker(manifest, Study.Environment);
        var ckpt = Checkpoint(dir.Path, "a.safetensors", seed: 1);
        var e = Assert.Throws<InvalidOperationException>(() =>
            Sweep.Plan(store, "toy", new[] { "toy-3" }, new[] { "linear" }, o, VitConfig.Preset("mini"), Study.Environment, ckpt));
        Assert.Contains("checkpoint 'none' there, 'file' now", e.Message);
        // A worker given a manifest planned elsewhere checks too, before it reads anything back.
        var moved = manifest with { Checkpoint = ckpt };
        Assert.Throws<InvalidOperationException>(() => Sweep.RunWorker(moved, Study.Environment));
        Assert.Throws<InvalidOperationException>(() => Sweep.RunIndex(moved, 0, Study.Environment));
    }

    [Fact]
    public void AStoreLaidOutAsBeforeIdentitiesKeepsLoadingAndThenKeepsItsIdentity()
    {
        using var dir = new TempDir();
        var store = Path.Combine(dir.Path, "store");
        DateTime finished;
        using (var first = Toy(store)) finished = first.Final.FinishedUtc;
        // What main wrote before this change: trials.jsonl, budgets.json, predictions/, claims/, store.lock; no identity.json.
        File.Delete(Path.Combine(store, "identity.json"));
        Assert.Equal(new[] { "budgets.json", "claims", "predictions", "store.lock", "trials.jsonl" },
            Directory.EnumerateFileSystemEntries(store).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        var notices = new List<string>();
        new ResultsStore(store) { Notices = notices.Add }.CheckIdentity("smoke/vtab1k/toy-3",
            TrialIdentity.Of(new SweepManifest { Store = store, Suite = "toy", Profile = "smoke", Backbone = VitConfig.Preset("mini"), Trials = new() }.Setup, "toy-3"));
        Assert.Contains(notices, n => n.Contains("recorded before stores noted their backbone and data"));
        File.Delete(Path.Combine(store, "identity.json"));

        using (var again = Toy(store)) Assert.Equal(finished, again.Final.FinishedUtc);
        Assert.True(File.Exists(Path.Combine(store, "identity.json")));
        Assert.Throws<InvalidOperationException>(() => Toy(store, Checkpoint(dir.Path, "a.safetensors", seed: 1)));
    }

    [Fact]
    public void BadInputsFailBeforeAnythingIsRecorded()
    {
        using var dir = new TempDir();
        var store = Path.Combine(dir.Path, "store");
        var missing = Path.Combine(dir.Path, "nonexistent.safetensors");
        var e = Assert.Throws<FileNotFoundException>(() => Toy(store, missing));
        Assert.Contains(missing, e.Message);
        Assert.Throws<ArgumentException>(() => Toy(store, task: "toy-99"));
        Assert.Throws<ArgumentException>(() => Study.Run("", "linear", "smoke", store: store, suite: "mini"));
        Assert.Throws<ArgumentException>(() => Study.Run("no-such-task", "linear", "smoke", store: store, suite: "mini"));
        Assert.False(Directory.Exists(store)); // no store, no budgets.json entry for a task that does not exist
    }

    [Fact]
    public void AFailedTrialIsRetriedByTheNextRunSayingSo()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 8);
        var notices = new List<string>();
        var store = new ResultsStore(Temp.Dir()) { Notices = notices.Add };
        var good = new PeftFactory(Training.TinyData.Config(), null);
        BuiltModel Broken(TrialConfig c, int k) => throw new FileNotFoundException("Checkpoint not found: /nonexistent.safetensors");
        var o = ProtocolTests.Tiny();

        var failed = Protocol.Vtab1k(task, "full", null, Broken, o, store);
        Assert.All(failed.Tuning, t => Assert.Equal("error", t.Status));
        Assert.Equal("no-selection", failed.Final.Status);
        // Within one run a failure stands (the run moves on); the next run retries every failed trial, saying so.
        var rerun = Protocol.Vtab1k(task, "full", null, good.Build, o, store);
        Assert.All(rerun.Tuning.Append(rerun.Final), t => Assert.Equal("ok", t.Status));
        Assert.Equal(failed.Tuning.Count + 1, notices.Count(n => n.StartsWith("retrying ", StringComparison.Ordinal)));
        Assert.Equal(rerun.Tuning.Count + 1, store.Records().Count);
        Assert.All(store.Records(), r => Assert.Equal("ok", r.Status));
        Assert.Empty(store.Read().Invalid);
        // A finished trial is not run again.
        notices.Clear();
        var third = Protocol.Vtab1k(task, "full", null, Broken, o, store);
        Assert.Equal(rerun.Final.FinishedUtc, third.Final.FinishedUtc);
        Assert.Empty(notices);
    }

    /// <summary>Issue 26 item 2: a final selected while a tune trial had failed stood for good, so the rerun that
    /// retried that trial (and may find it the best) read the old final back. Now the rerun retries the tune trial, then
    /// selects again and runs the final (and val refit) once; a third run runs nothing.</summary>
    [Fact]
    public void AFinalSelectedWithoutAFailedTuneTrialRunsOnceMoreAfterTheRetrySucceeds()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 8);
        var notices = new List<string>();
        var store = new ResultsStore(Temp.Dir()) { Notices = notices.Add };
        var good = new PeftFactory(Training.TinyData.Config(), null);
        var o = ProtocolTests.Tiny();
        var built = new List<string>();
        var failing = Protocol.TuneConfigs(task.Name, "full", null, o)[1].Key;
        BuiltModel Counted(TrialConfig c, int k, bool fail)
        {
            built.Add(c.Phase);
            return fail && c.Key == failing ? throw new IOException("lost the disk") : good.Build(c, k);
        }

        var first = Protocol.Vtab1k(task, "full", null, (c, k) => Counted(c, k, fail: true), o, store);
        Assert.Equal("error", first.Tuning[1].Status);
        Assert.Equal("ok", first.Final.Status);
        Assert.Equal(new[] { failing }, first.Final.SelectedWithout);
        Assert.True(ResultsStore.Retryable(store.Find(first.Final.Key)!)); // recorded so, not only returned so
        int afterTune = Protocol.HasRung(first.Tuning.Select(t => t.Config)) ? 2 : 1; // the leader's full run (after a rung) and the final

        built.Clear(); notices.Clear();
        var rerun = Protocol.Vtab1k(task, "full", null, (c, k) => Counted(c, k, fail: false), o, store);
        Assert.Equal(afterTune, built.Count(p => p != "tune")); // each once
        Assert.Equal(1, built.Count(p => p == "tune"));                                     // only the failed tune trial
        Assert.Equal(1, built.Count(p => p == "final"));
        Assert.Contains(notices, n => n == $"retrying {failing}: its recorded run failed (error: IOException: lost the disk)");
        Assert.Contains(notices, n => n == $"retrying {first.Final.Key}: it was selected while 1 tune trial(s) had failed, which this run retries first");
        Assert.All(rerun.Tuning.Append(rerun.Final), t => Assert.Equal("ok", t.Status));
        Assert.Null(rerun.Final.SelectedWithout);
        Assert.True(rerun.Final.FinishedUtc > first.Final.FinishedUtc);
        Assert.Equal(Protocol.Select(rerun.Tuning, o.TieBreak)!.Config.Lr, rerun.Final.Config.Lr); // chosen from the whole grid
        Assert.Equal(rerun.Tuning.Count + afterTune, store.Records().Count);
        Assert.Empty(store.Read().Invalid);

        built.Clear(); notices.Clear();
        var third = Protocol.Vtab1k(task, "full", null, (c, k) => Counted(c, k, fail: true), o, store);
        Assert.Empty(built);
        Assert.Empty(notices);
        Assert.Equal(rerun.Final.FinishedUtc, third.Final.FinishedUtc);
    }

    [Fact]
    public void ASweepWorkerRetriesTheFailuresItFindsOnceAndAnIndexRetriesItsOwn()
    {
        using var dir = new TempDir();
        var store = Path.Combine(dir.Path, "store");
        var manifest = Sweep.Plan(store, "toy", new[] { "toy-3" }, new[] { "linear" }, Profiles.Smoke.Vtab1k(), VitConfig.Preset("mini"), Study.Environment, null);
        var results = new ResultsStore(store);
        var tune = manifest.Trials[0];
        results.Append(new TrialRecord { Key = tune.Key, Config = tune, Status = "error", Error = "IOException: lost the disk" });

        var log = new StringWriter();
        Sweep.RunWorker(manifest, Study.Environment, log: log);
        Assert.Contains($"retrying {tune.Key}", log.ToString());
        Assert.All(results.Records(), r => Assert.Equal("ok", r.Status));
        Assert.Equal(manifest.Trials.Count, results.Records().Count);

        // An ok record is never replaced.
        var ok = results.Find(tune.Key)!;
        Assert.False(results.Append(ok with { Status = "error", Error = "x", FinishedUtc = DateTime.UtcNow }, retrying: ok));
        Assert.Equal("ok", results.Find(tune.Key)!.Status);

        // `peft trial --index i` (a slurm array task) reruns its index when the record there failed.
        var store2 = Path.Combine(dir.Path, "store2");
        var m2 = manifest with { Store = store2 };
        var results2 = new ResultsStore(store2);
        results2.Append(new TrialRecord { Key = tune.Key, Config = tune, Status = "error", Error = "IOException: lost the disk" });
        log = new StringWriter();
        var run = Sweep.RunIndex(m2, 0, Study.Environment, log: log);
        Assert.False(run.AlreadyFinished);
        Assert.Equal("ok", results2.Find(tune.Key)!.Status);
        Assert.Contains($"retrying {tune.Key}", log.ToString());
    }
}
