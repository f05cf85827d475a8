using System.Diagnostics;
using System.Text;
using PeftWorkbench.Fuzz;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>
/// Issue 26 item 5: hostile paths in every value the Slurm export writes into a script (the store, PEFT_DATA, the
/// checkpoint, a vtab:ROOT folder, the peft command). The written scripts run for real against stand-ins (sbatch that
/// refuses --test-only, so submit.sh prints its advice; a peft command that records what it was given): no payload
/// may run, the task must get exactly the paths it was exported with, and sbatch's own reading of the #SBATCH lines
/// (quotes, backslash escapes, '#' comments; first non-comment line ends them) must give the log pattern back.
/// A value no #SBATCH line can carry (a line break in the store's path) is refused before anything is written.
/// </summary>
public class SlurmInjectionFuzzTests
{
    static readonly DefaultTrialEnvironment Env = new();

    /// <summary>Each payload touches a file named by its marker in the current folder; '/' cannot be in a file name.</summary>
    static readonly Func<string, string>[] Payloads =
    {
        m => $"$(touch {m})",
        m => $"`touch {m}`",
        m => $"a\"; touch {m}; echo \"",
        m => $"a'; touch {m}; echo '",
        m => $"a\ntouch {m}\nb",
        m => $"a\rtouch {m}",
        m => $"x #\ntouch {m} #",
        m => $"a\\\ntouch {m}",
        m => $"%A %% $HOME \\ {m} \"'",
        m => $"$'\\n'touch {m}",
    };

    static readonly string[] Sites = { "store", "PEFT_DATA", "checkpoint", "vtab-root", "peft-command" };

    [Fact]
    public void HostilePathsInTheSlurmExportNeverRunAndReachTheTaskIntact()
    {
        var outcomes = new Outcomes();
        var failures = new List<string>();
        int n = 0;
        foreach (var site in Sites)
            foreach (var payload in Payloads)
            {
                var marker = $"PWNED_{n++}";
                var hostile = payload(marker);
                string verdict;
                try { verdict = Try(site, hostile, marker); }
                catch (Exception e) { verdict = "crash: " + e.GetType().Name + ": " + e.Message; }
                switch (verdict.Split(':')[0])
                {
                    case "clean": outcomes.Clean++; break;
                    case "injection": outcomes.Injection++; break;
                    case "silent-wrong": outcomes.SilentWrong++; break;
                    case "hang": outcomes.Hang++; break;
                    default: outcomes.Crash++; break;
                }
                if (!verdict.StartsWith("clean")) failures.Add($"{site} {Escape(hostile)}: {verdict}");
            }
        FuzzTable.Record("slurm", "hostile paths in store, PEFT_DATA, checkpoint, vtab root, command", outcomes, "26.5");
        Assert.True(failures.Count == 0, outcomes + "\n" + string.Join("\n", failures));
    }

    static string Escape(string s) => s.Replace("\n", "\\n").Replace("\r", "\\r");

    static string Try(string site, string hostile, string marker)
    {
        var root = Temp.Dir();
        var cwd = Directory.CreateDirectory(Path.Combine(root, "cwd")).FullName;
        var store = site == "store" ? Path.Combine(root, "store-" + hostile) : Path.Combine(root, "store");
        Directory.CreateDirectory(store);
        var o = ProtocolOptions.Vtab1k("smoke") with { Lrs = new[] { 1e-3 }, WeightDecays = new[] { 1e-4 }, DropPaths = new[] { 0.0 } };
        var m = Sweep.Plan(store, "toy", new[] { "toy-3" }, new[] { "linear" }, o, TinyData.Config(), Env);
        var manifestPath = Path.Combine(store, "manifest.json");
        m.Save(manifestPath);
        if (site == "checkpoint") m = m with { Checkpoint = Path.Combine(root, "ckpt-" + hostile + ".safetensors") };
        if (site == "vtab-root") m = m with { Suite = "vtab:" + Path.Combine(root, "vtab-" + hostile) };
        var dataDir = site == "PEFT_DATA" ? Path.Combine(root, "data-" + hostile) : Path.Combine(root, "data");
        var command = Path.Combine(site == "peft-command" ? Path.Combine(root, "bin-" + hostile) : Path.Combine(root, "bin"), "peft");
        Directory.CreateDirectory(Path.GetDirectoryName(command)!);
        // The stand-in records its arguments and PEFT_DATA, NUL-separated (a path may hold a line break).
        File.WriteAllText(command, "#!/bin/sh\nprintf '%s\\0' \"$@\" > \"$ARGS_OUT\"\nprintf '%s' \"$PEFT_DATA\" > \"$ENV_OUT\"\n");
        File.SetUnixFileMode(command, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var slurmDir = Path.Combine(store, "slurm");

        SlurmExport e;
        try { e = Sweep.ExportSlurm(m, manifestPath, slurmDir, new SlurmOptions { PeftCommand = new[] { command }, DataDir = dataDir, CpusPerTask = 1 }); }
        catch (ArgumentException refused)
        {
            // Refusing is right only where no quoting exists: a control character in the folder of an #SBATCH line.
            bool expected = site == "store" && (hostile.Any(char.IsControl) || hostile.Contains('\\'));
            if (!expected) return "crash: refused a value that can be quoted: " + refused.Message;
            if (refused.Message.Contains('\n')) return "crash: the refusal is not one line";
            return Directory.Exists(slurmDir) ? "silent-wrong: refused after writing " + slurmDir : "clean";
        }
        if (site == "store" && (hostile.Any(char.IsControl) || hostile.Contains('\\'))) return "silent-wrong: exported a store path #SBATCH cannot carry";

        // submit.sh, with sbatch refusing --test-only: the advice echo names the store.
        var bin = Directory.CreateDirectory(Path.Combine(root, "fake-slurm")).FullName;
        File.WriteAllText(Path.Combine(bin, "sbatch"), "#!/bin/sh\necho 'allocation failure' >&2\nexit 1\n");
        File.WriteAllText(Path.Combine(bin, "sinfo"), "#!/bin/sh\necho 'debug* 2 24105 infinite'\n");
        foreach (var f in Directory.GetFiles(bin)) File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var submit = Run(e.SubmitScript, cwd, new() { ["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH") });
        if (submit is null) return "hang: submit.sh";
        if (Pwned(root, marker)) return "injection: submit.sh ran the payload";
        if (submit.Value.Code != 1 || !submit.Value.Err.Contains("cannot run tune.sbatch")) return $"silent-wrong: submit.sh exit {submit.Value.Code}: {submit.Value.Err}";
        if (site == "store" && !submit.Value.Err.Contains(marker)) return "silent-wrong: the advice lost the store's name: " + submit.Value.Err;

        foreach (var script in new[] { e.TuneScript, e.FinalScript })
        {
            var text = File.ReadAllText(script);
            if (SbatchDirectives(text) is not { } directives) return "injection: a script line ends sbatch's directives early";
            var output = directives.FirstOrDefault(d => d.StartsWith("--output="));
            var phase = Path.GetFileNameWithoutExtension(script);
            var wanted = Path.Combine(slurmDir, "logs", $"{phase}-").Replace("%", "%%") + "%A_%a.out";
            if (output != "--output=" + wanted) return $"silent-wrong: sbatch reads {output}, not --output={wanted}";
            var args = Path.Combine(root, "args"); var env = Path.Combine(root, "env");
            var run = Run(script, cwd, new() { ["SLURM_ARRAY_TASK_ID"] = "0", ["ARGS_OUT"] = args, ["ENV_OUT"] = env });
            if (run is null) return "hang: " + script;
            if (Pwned(root, marker)) return $"injection: {Path.GetFileName(script)} ran the payload";
            if (run.Value.Code != 0) return $"crash: {Path.GetFileName(script)} exit {run.Value.Code}: {run.Value.Err}";
            var got = File.ReadAllText(args).Split('\0', StringSplitOptions.RemoveEmptyEntries);
            var expect = new[] { "trial", "--manifest", Path.GetFullPath(manifestPath), "--index", "0" };
            if (!got.SequenceEqual(expect)) return "silent-wrong: the task got " + Escape(string.Join(" | ", got));
            if (File.ReadAllText(env) != dataDir) return "silent-wrong: PEFT_DATA was " + Escape(File.ReadAllText(env));
        }
        return "clean";
    }

    static bool Pwned(string root, string marker) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Any(f => Path.GetFileName(f) == marker);

    static (int Code, string Err)? Run(string script, string cwd, Dictionary<string, string> env)
    {
        var psi = new ProcessStartInfo("bash", new[] { script }) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = cwd };
        foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(120_000)) { p.Kill(true); return null; } // a hang bound for the table, not a speed check
        return (p.ExitCode, err.Result);
    }

    /// <summary>The options sbatch takes from a script, read as sbatch 22.05 reads them (src/sbatch/opt.c): lines that
    /// start with #SBATCH until the first line that is not a comment; in each, blank-separated arguments where quotes
    /// group, a backslash takes the next character as it is, and an unquoted '#' ends the line. Null when a line
    /// that is not a comment comes before the script's `set -euo pipefail` (a path broke out of a comment).</summary>
    static List<string>? SbatchDirectives(string text)
    {
        var result = new List<string>();
        foreach (var line in text.Split('\n').Skip(1))
        {
            if (line == "set -euo pipefail") return result;
            if (!line.TrimStart().StartsWith('#') && line.Trim().Length > 0) return null;
            if (!line.StartsWith("#SBATCH")) continue;
            var rest = line["#SBATCH".Length..];
            int i = 0;
            while (true)
            {
                while (i < rest.Length && char.IsWhiteSpace(rest[i])) i++;
                if (i >= rest.Length) break;
                var arg = new StringBuilder();
                bool quoted = false, escaped = false, comment = false; char q = '\0';
                for (; i < rest.Length && (quoted || !char.IsWhiteSpace(rest[i])); i++)
                {
                    char c = rest[i];
                    if (escaped) { escaped = false; arg.Append(c); continue; }
                    if (c == '\\') { escaped = true; continue; }
                    if (quoted) { if (c == q) { quoted = false; continue; } arg.Append(c); continue; }
                    if (c is '"' or '\'') { quoted = true; q = c; continue; }
                    if (c == '#') { comment = true; break; }
                    arg.Append(c);
                }
                if (quoted) return null; // sbatch: "Unmatched quote", a fatal error
                if (arg.Length > 0) result.Add(arg.ToString());
                if (comment) break;
            }
        }
        return null;
    }
}
