using System.Diagnostics;
using System.Text.RegularExpressions;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

public class SweepTests
{
    static readonly DefaultTrialEnvironment Env = new();

    /// <summary>3 tasks x 2 methods x 6 tune configs + 6 finals = 42 fast trials on the 8-px test ViT.</summary>
    /// <summary>The pid of the first worker a running `peft sweep` started (waits up to 60 s; fails naming its output).</summary>
    internal static int FirstWorkerChild(Process sweep)
    {
        int child = 0;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (child == 0 && DateTime.UtcNow < deadline && !sweep.HasExited)
        {
            child = Directory.GetDirectories($"/proc/{sweep.Id}/task")
                .SelectMany(t => { try { return File.ReadAllText(Path.Combine(t, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries); } catch (IOException) { return Array.Empty<string>(); } })
                .Select(int.Parse).FirstOrDefault(IsWorker);
            Thread.Sleep(20);
        }
        Assert.True(child > 0, "no worker child found:\n" + PeftCli.Output(sweep));
        return child;
    }

    /// <summary>A child that has become a worker: between fork and exec a child still shows its parent's command line
    /// (the sweep's), a window that load widens.</summary>
    static bool IsWorker(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Split('\0').Contains("worker"); }
        catch (IOException) { return false; } // gone already
    }

    internal static (SweepManifest Manifest, string Path) Plan(string dir, int tasks = 3)
    {
        var o = ProtocolOptions.Vtab1k("smoke") with { Lrs = new[] { 1e-3, 3e-3, 1e-2 }, WeightDecays = new[] { 1e-4, 1e-3 }, DropPaths = new[] { 0.0 } };
        var m = Sweep.Plan(dir, "toy", Enumerable.Range(3, tasks).Select(k => $"toy-{k}"), new[] { "full", "linear" }, o, TinyData.Config(), Env);
        var path = System.IO.Path.Combine(dir, "manifest.json");
        m.Save(path);
        return (m, path);
    }

    internal static void AssertCompleteAndUnique(SweepManifest m)
    {
        var lines = File.ReadAllLines(System.IO.Path.Combine(m.Store, "trials.jsonl")).Where(l => l.Length > 0).ToList();
        var store = new ResultsStore(m.Store);
        var keys = store.Records().Select(r => r.Key).ToList();
        Assert.Equal(m.Trials.Select(t => t.Key).OrderBy(k => k), keys.OrderBy(k => k));
        // Nothing recorded twice (Records() would hide a duplicate, so count raw lines). A kill can at most tear the
        // one line being written, which is then not a record.
        var valid = lines.Count(l => { try { return System.Text.Json.JsonSerializer.Deserialize<TrialRecord>(l) is not null; } catch (System.Text.Json.JsonException) { return false; } });
        Assert.Equal(m.Trials.Count, valid);
        Assert.InRange(lines.Count - valid, 0, 1);
        Assert.Empty(store.Claimed());
        Assert.Empty(Directory.GetFiles(System.IO.Path.Combine(m.Store, "claims")));
        Assert.All(store.Records(), r => Assert.True(r.Status is "ok" or "diverged", r.Key + ": " + r.Error));
    }

    [Fact]
    public void ManifestPutsTuneBeforeFinalsAndRoundTrips()
    {
        var dir = Temp.Dir();
        var (m, path) = Plan(dir);
        Assert.Equal(36 + 6, m.Trials.Count);
        Assert.True(m.Trials.Take(36).All(t => t.Phase == "tune") && m.Trials.Skip(36).All(t => t.Phase == "final"));
        var back = SweepManifest.Load(path);
        Assert.Equal(m.Trials.Select(t => t.Key), back.Trials.Select(t => t.Key));
        Assert.Equal(m.Backbone, back.Backbone);
        File.WriteAllText(path, "{ not json");
        Assert.Contains("manifest.json", Assert.Throws<InvalidDataException>(() => SweepManifest.Load(path)).Message);
    }

    /// <summary>A stand-in for the peft command: an executable file, named by a path relative to the current folder.</summary>
    static (string Relative, string Full) FakeCommand(string dir)
    {
        var full = System.IO.Path.Combine(dir, "bin", "peft");
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        File.WriteAllText(full, "#!/bin/sh\nexit 0\n");
        File.SetUnixFileMode(full, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return (System.IO.Path.GetRelativePath(Environment.CurrentDirectory, full), full);
    }

    [Fact]
    public void SlurmExportParsesBackToTheManifestWithEveryPathAbsoluteAndEveryOptionWritten()
    {
        var dir = Temp.Dir();
        var (m, path) = Plan(dir);
        var (relative, full) = FakeCommand(dir);
        var slurmDir = System.IO.Path.Combine(dir, "slurm");
        var e = Sweep.ExportSlurm(m, path, slurmDir, new SlurmOptions
        {
            PeftCommand = new[] { relative }, CpusPerTask = 8, Time = "01:00:00", Partition = "cpu", MaxParallel = 20,
            Mem = "4G", Account = "proj1", Qos = "low", ExtraDirectives = new[] { "--exclusive", "--constraint=avx512" }, DataDir = "data-here",
        });
        Assert.Equal(new[] { full }, e.Command);
        Assert.True(Directory.Exists(System.IO.Path.Combine(slurmDir, "logs")));
        var covered = new List<int>();
        foreach (var (script, phase) in new[] { (e.TuneScript, "tune"), (e.FinalScript, "final") })
        {
            var text = File.ReadAllText(script);
            Assert.StartsWith("#!/bin/bash\n", text);
            var array = Regex.Match(text, @"^#SBATCH --array=(\d+)-(\d+)%20$", RegexOptions.Multiline);
            Assert.True(array.Success, text);
            int first = int.Parse(array.Groups[1].Value), last = int.Parse(array.Groups[2].Value);
            for (int i = first; i <= last; i++) { covered.Add(i); Assert.Equal(phase, m.Trials[i].Phase); }
            foreach (var line in new[] { "--cpus-per-task=8", "--time=01:00:00", "--partition=cpu", "--mem=4G", "--account=proj1", "--qos=low", "--exclusive", "--constraint=avx512" })
                Assert.Matches($"(?m)^#SBATCH {Regex.Escape(line)}$", text);
            Assert.Matches($"(?m)^#SBATCH --output={Regex.Escape(slurmDir)}/logs/{phase}-%A_%a\\.out$", text);
            // The data cache is pinned (absolute), the thread count follows the CPUs, and the comment says what nodes must see.
            Assert.Matches($"(?m)^export PEFT_DATA={Regex.Escape(System.IO.Path.GetFullPath("data-here"))}$", text);
            Assert.Matches("(?m)^export OMP_NUM_THREADS=8$", text);
            Assert.Contains("must see, at the same paths", text);
            var run = Regex.Match(text, @"(?m)^exec (\S+) trial --manifest (\S+) --index ""\$SLURM_ARRAY_TASK_ID""$");
            Assert.True(run.Success, text);
            Assert.Equal(full, run.Groups[1].Value);
            Assert.Equal(m.Trials.Select(t => t.Key), SweepManifest.Load(run.Groups[2].Value).Trials.Select(t => t.Key));
        }
        Assert.Equal(Enumerable.Range(0, m.Trials.Count), covered);
        var submit = File.ReadAllText(e.SubmitScript);
        Assert.Matches(@"(?m)^mkdir -p logs$", submit);
        Assert.Matches(@"tune=\$\(sbatch --parsable tune\.sbatch\)", submit);
        Assert.Matches(@"final=\$\(sbatch --parsable --dependency=afterany:\$tune final\.sbatch\)", submit);
        // The default CPUs per task: what one trial uses here.
        var byDefault = Sweep.ExportSlurm(m, path, slurmDir, new SlurmOptions { PeftCommand = new[] { full } });
        Assert.Matches($"(?m)^#SBATCH --cpus-per-task={SlurmOptions.TrialThreads}$", File.ReadAllText(byDefault.TuneScript));
        Assert.Throws<ArgumentException>(() => Sweep.ExportSlurm(m, path, dir, new SlurmOptions { PeftCommand = new[] { full }, MaxArraySize = 10 }));
        Assert.Contains("not on PATH", Assert.Throws<ArgumentException>(() =>
            Sweep.ExportSlurm(m, path, slurmDir, new SlurmOptions { PeftCommand = new[] { "no-such-peft-launcher" } })).Message);
        Assert.Contains("--mem", Assert.Throws<ArgumentException>(() =>
            Sweep.ExportSlurm(m, path, slurmDir, new SlurmOptions { PeftCommand = new[] { full }, Mem = "4G; rm -rf /" })).Message);
    }

    /// <summary>submit.sh against a stand-in sbatch: a request the cluster cannot fit stops it with a clear message before
    /// anything is submitted; otherwise it recreates logs/ and chains the finals after the tune array.</summary>
    [Fact]
    public void SubmitScriptChecksWithTestOnlyCreatesLogsAndChainsTheFinals()
    {
        var dir = Temp.Dir();
        var (m, path) = Plan(dir, tasks: 1);
        var (_, full) = FakeCommand(dir);
        var e = Sweep.ExportSlurm(m, path, System.IO.Path.Combine(dir, "slurm"), new SlurmOptions { PeftCommand = new[] { full }, CpusPerTask = 4 });
        var bin = System.IO.Path.Combine(dir, "fake-slurm");
        Directory.CreateDirectory(bin);
        var calls = System.IO.Path.Combine(dir, "calls.txt");
        File.WriteAllText(System.IO.Path.Combine(bin, "sbatch"), $$"""
            #!/bin/sh
            echo "$*" >> {{calls}}
            case "$*" in
              *--test-only*) if [ -n "$FAIL_TEST_ONLY" ]; then echo "allocation failure: Requested node configuration is not available" >&2; exit 1; fi
                             echo "sbatch: Job 1 to start at now" >&2 ;;
              *tune.sbatch*) echo "41;cluster" ;;
              *) echo "42" ;;
            esac
            """.Replace("            ", ""));
        File.WriteAllText(System.IO.Path.Combine(bin, "sinfo"), "#!/bin/sh\necho 'debug* 2 24105 infinite'\n");
        foreach (var f in Directory.GetFiles(bin)) File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        (int Code, string Out, string Err) Submit(bool fail)
        {
            var psi = new ProcessStartInfo("bash", e.SubmitScript) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.Environment["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH");
            if (fail) psi.Environment["FAIL_TEST_ONLY"] = "1";
            using var p = Process.Start(psi)!;
            var o = p.StandardOutput.ReadToEndAsync();
            var err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, o.Result, err);
        }
        var failed = Submit(fail: true);
        Assert.Equal(1, failed.Code);
        Assert.Contains("cannot run tune.sbatch", failed.Err);
        Assert.Contains("Requested node configuration is not available", failed.Err);
        Assert.Contains("cpus-per-task=4", failed.Err);
        Assert.Contains("debug* 2 24105", failed.Err);
        Assert.DoesNotContain(File.ReadAllLines(calls), l => !l.StartsWith("--test-only"));

        File.Delete(calls);
        Directory.Delete(System.IO.Path.Combine(dir, "slurm", "logs"));
        var ok = Submit(fail: false);
        Assert.True(ok.Code == 0, ok.Err);
        Assert.True(Directory.Exists(System.IO.Path.Combine(dir, "slurm", "logs")));
        Assert.Equal(new[] { "--test-only tune.sbatch", "--test-only final.sbatch", "--parsable tune.sbatch", "--parsable --dependency=afterany:41 final.sbatch" },
            File.ReadAllLines(calls));
        Assert.Contains("tune array 41, final array 42", ok.Out);
    }

    [Fact]
    public void RerunSkipsFinishedAndSlurmIndicesRunSingleTrials()
    {
        var dir = Temp.Dir();
        var (m, _) = Plan(dir, tasks: 1);
        int finalIndex = m.Trials.FindIndex(t => t.Phase == "final");
        var ex = Assert.Throws<InvalidOperationException>(() => Sweep.RunIndex(m, finalIndex, Env));
        Assert.Contains("needs tune trials 0,1,2,3,4,5", ex.Message);
        var first = Sweep.RunIndex(m, 0, Env).Record;
        Assert.Equal(m.Trials[0].Key, first.Key);
        Assert.Equal(m.Trials.Count - 1, Sweep.RunWorker(m, Env));
        Assert.Equal(0, Sweep.RunWorker(m, Env));
        var again = Sweep.RunIndex(m, 0, Env);
        Assert.True(again.AlreadyFinished);
        Assert.Equal(first.Top1Last, again.Record.Top1Last);
        AssertCompleteAndUnique(m);
    }

    static Process Worker(string manifest)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { PeftCli.Dll, "worker", "--manifest", manifest, "--quiet" }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine(); p.BeginErrorReadLine();
        return p;
    }

    [Fact]
    public void AWorkerKilledMidSweepLosesNothingAndTheRestFinishesWithoutDuplicates()
    {
        var dir = Temp.Dir();
        var (m, path) = Plan(dir);
        var store = new ResultsStore(dir);
        using (var child = Worker(path))
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (store.Records().Count < 3 && !child.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(10);
            Assert.False(child.HasExited, "the worker finished (or died) before it could be killed");
            child.Kill();
            child.WaitForExit();
        }
        int before = store.Records().Count;
        Assert.InRange(before, 3, m.Trials.Count - 1);
        // The killed worker's claim stays behind; this worker takes it over and finishes the sweep.
        Assert.Equal(m.Trials.Count - before, Sweep.RunWorker(m, Env));
        AssertCompleteAndUnique(m);
    }

    /// <summary>`peft sweep --seed N` (to measure seed-to-seed spread) plans and records every trial under that seed.</summary>
    [Fact]
    public void SweepSeedReachesEveryTrial()
    {
        var dir = Temp.Dir();
        var (code, output) = PeftCli.Peft(new[] { "sweep", "--suite", "toy", "--tasks", "toy-3", "--methods", "linear", "--profile", "smoke", "--seed", "7",
            "--workers", "1", "--out", dir }, TimeSpan.FromMinutes(2));
        Assert.True(code == 0, output);
        var records = new ResultsStore(dir).Records();
        Assert.NotEmpty(records);
        Assert.All(records, r => Assert.Equal(7, r.Config.Seed));
        Assert.All(SweepManifest.Load(SweepDirectory.ManifestPath(dir)).Trials, t => Assert.Contains("/seed=7/", t.Key));
    }

    [Fact]
    public void TwoWorkerProcessesShareOneStore()
    {
        var dir = Temp.Dir();
        var (m, path) = Plan(dir);
        using var a = Worker(path);
        using var b = Worker(path);
        Assert.True(a.WaitForExit(120_000) && b.WaitForExit(120_000));
        Assert.Equal((0, 0), (a.ExitCode, b.ExitCode));
        AssertCompleteAndUnique(m);
        Assert.True(new ResultsStore(dir).Records().Select(r => r.Pid).Distinct().Count() >= 1);
    }

    /// <summary>Issue 16's bug: `peft sweep --workers 2` read its children's exit codes after disposing them ("No
    /// process is associated with this object"). Both workers' statuses are reported; a worker that dies makes the
    /// sweep exit non-zero, though the sweep itself finishes (the killed worker's trial is taken over).</summary>
    [Fact]
    public void SweepWithTwoWorkersReportsBothStatusesAndFailsWhenAWorkerDies()
    {
        var dir = Temp.Dir();
        var (m, _) = Plan(dir, tasks: 1);
        var ok = PeftCli.Peft(new[] { "sweep", "--out", dir, "--workers", "2" }, TimeSpan.FromMinutes(3));
        Assert.True(ok.Code == 0, ok.Output);
        Assert.Matches(@"(?m)^  worker 2 \(pid \d+\): exit 0$", ok.Output);
        Assert.DoesNotContain("No process is associated", ok.Output);
        AssertCompleteAndUnique(m);

        var dir2 = Temp.Dir();
        var (m2, _) = Plan(dir2);
        using var sweep = PeftCli.StartPeft(new[] { "sweep", "--out", dir2, "--workers", "2" });
        int child = SweepTests.FirstWorkerChild(sweep);
        // Killed as soon as it is seen: on a quiet machine the parent may finish these toy trials before a worker that
        // slept first would take one, and a worker that has exited cannot be killed (the test then failed, not the sweep).
        // Taking over a dead worker's claimed trial has tests of its own (ResultsStore claims).
        using (var worker = Process.GetProcessById(child)) worker.Kill();
        Assert.True(sweep.WaitForExit(180_000), PeftCli.Output(sweep));
        sweep.WaitForExit();
        var output = PeftCli.Output(sweep);
        Assert.True(sweep.ExitCode == 1, output);
        Assert.Contains($"worker 2 (pid {child}): killed by signal 9 (exit 137)", output);
        AssertCompleteAndUnique(m2);
    }

    /// <summary>Library side of the same: a child that fails is reported with its exit code, and the run is not ok.</summary>
    [Fact]
    public void RunLocalReportsAFailingWorkersExitCode()
    {
        var dir = Temp.Dir();
        var (m, _) = Plan(dir, tasks: 1);
        var result = Sweep.RunLocal(m, 3, Env, () => Process.Start(new ProcessStartInfo("sh") { ArgumentList = { "-c", "exit 3" }, UseShellExecute = false })!);
        Assert.Equal(m.Trials.Count, result.RanHere);
        Assert.Equal(new[] { (2, 3), (3, 3) }, result.Others.Select(w => (w.Number, w.ExitCode)));
        Assert.False(result.Ok);
        Assert.EndsWith("failed, exit 3", result.Others[0].Describe());
    }

    /// <summary>SIGTERM (scancel, a time limit) ends `peft trial` cleanly: exit 143, nothing recorded, the claim released
    /// at once (a requeued task can run the trial straight away).</summary>
    [Fact]
    public void SigtermEndsATrialCleanlyReleasingItsClaim()
    {
        var dir = Temp.Dir();
        var export = PeftCli.Peft(new[] { "sweep", "--suite", "mini", "--tasks", "cells", "--methods", "bitfit", "--profile", "default", "--out", dir,
            "--export", "slurm", "--peft-command", "/bin/true" }, TimeSpan.FromMinutes(1));
        Assert.True(export.Code == 0, export.Output);
        var m = SweepManifest.Load(System.IO.Path.Combine(dir, "manifest.json"));
        var store = new ResultsStore(dir);
        using var trial = PeftCli.StartPeft(new[] { "trial", "--manifest", System.IO.Path.Combine(dir, "manifest.json"), "--index", "0" });
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (store.Holder(m.Trials[0].Key) is null && !trial.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.False(trial.HasExited, PeftCli.Output(trial));
        Thread.Sleep(1000); // into loading and training
        Assert.Equal(0, PeftCli.Run(PeftCli.Info("kill", new[] { "-TERM", trial.Id.ToString() }), TimeSpan.FromSeconds(10)).Code);
        Assert.True(trial.WaitForExit(30_000), "the trial did not end within 30 s of SIGTERM:\n" + PeftCli.Output(trial));
        trial.WaitForExit();
        Assert.True(trial.ExitCode == 143, PeftCli.Output(trial));
        Assert.Contains("[0] stopped by signal 15: nothing recorded, claim released", PeftCli.Output(trial));
        Assert.Null(store.Holder(m.Trials[0].Key));
        Assert.Empty(store.Records());
        using (var claim = store.TryClaim(m.Trials[0].Key)) Assert.NotNull(claim);
    }

    /// <summary>The launcher setup installs: `peft` works from any folder and a bare environment (as in a batch script),
    /// and `--peft-command peft` exports it by its absolute path.</summary>
    [Fact]
    public void TheSetupLauncherRunsFromABareEnvironmentAndExportsByItsAbsolutePath()
    {
        var bin = Temp.Dir();
        var install = PeftCli.Run(PeftCli.Info("bash", new[] { System.IO.Path.Combine(PeftCli.Repo, "environment", "setup.d", "launcher.sh") },
            new Dictionary<string, string> { ["PEFT_LAUNCHER_DIR"] = bin }), TimeSpan.FromMinutes(1));
        Assert.True(install.Code == 0, install.Output);
        var bare = PeftCli.Info("env", new[] { "-i", $"PATH={bin}:/usr/bin:/bin", "sh", "-c", "cd / && peft --version" });
        var version = PeftCli.Run(bare, TimeSpan.FromMinutes(1));
        Assert.True(version.Code == 0, version.Output);
        Assert.Matches(@"^\d+\.\d+\.\d+", version.Output.Trim());

        var dir = Temp.Dir();
        Plan(dir, tasks: 1);
        var export = PeftCli.Peft(new[] { "sweep", "--out", dir, "--export", "slurm", "--peft-command", "peft" }, TimeSpan.FromMinutes(1),
            new Dictionary<string, string> { ["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH") });
        Assert.True(export.Code == 0, export.Output);
        Assert.Contains($"exec {System.IO.Path.Combine(bin, "peft")} trial --manifest", File.ReadAllText(System.IO.Path.Combine(dir, "slurm", "tune.sbatch")));
    }
}
