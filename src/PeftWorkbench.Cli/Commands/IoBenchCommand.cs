using System.CommandLine;
using PeftWorkbench.Bench;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft bench io`: checkpoint load/save times and peak RSS growth, ours beside TorchSharp.PyBridge's.</summary>
public static class IoBenchCommand
{
    /// <summary>Adds `io` (and the hidden `io-child` each measurement runs in) under the existing `bench` group.</summary>
    public static void AddTo(RootCommand root)
    {
        var bench = root.Subcommands.First(c => c.Name == "bench");
        var preset = new Option<string>("--preset") { Description = "Model shape.", DefaultValueFactory = _ => "vit-b16" };
        var rounds = new Option<int>("--rounds") { Description = "Rounds over all cases (medians are printed).", DefaultValueFactory = _ => 3 };
        var dir = new Option<string?>("--dir") { Description = "Folder for the model files (default: a temp folder, deleted after)." };
        var only = new Option<string?>("--only") { Description = "Only the load or only the save cases." };
        only.AcceptOnlyFromAmong("load", "save");
        var io = new Command("io", "Load and save of safetensors, .pth and npz: seconds and peak RSS growth, ours beside PyBridge's load_py/save_py, each in a fresh process.")
            { preset, rounds, dir, only };
        io.SetAction(r => Cli.Guard(() =>
        {
            var config = VitConfig.Preset(r.GetValue(preset)!);
            string folder = r.GetValue(dir) ?? Directory.CreateTempSubdirectory("peft-bench-io-").FullName;
            try
            {
                Console.WriteLine($"bench io: {config.Name}, {r.GetValue(rounds)} rounds, files in {folder}; load average {Cli.LoadAverage()}");
                IoBench.Prepare(config, folder);
                Console.WriteLine($"  model files: {string.Join(", ", Directory.GetFiles(folder).Select(f => $"{Path.GetFileName(f)} {new FileInfo(f).Length / 1e6:F0} MB"))}");
                var results = IoBench.Run(IoBench.Cases(r.GetValue(only)), r.GetValue(rounds), c => Child(c, config.Name, folder), line => Console.WriteLine("  " + line));
                Console.WriteLine($"medians (load average {Cli.LoadAverage()}); +MB: peak RSS above the RSS with the model built");
                foreach (var line in IoBench.Table(results)) Console.WriteLine(line);
                return results.Any(x => x.Error is not null) ? 1 : 0;
            }
            finally { if (r.GetValue(dir) is null) Directory.Delete(folder, true); }
        }));
        bench.Subcommands.Add(io);

        var format = new Option<string>("--format") { Required = true };
        var side = new Option<string>("--side") { Required = true };
        var op = new Option<string>("--op") { Required = true };
        var child = new Command("io-child", "One measurement of `bench io` (prints one JSON line).") { preset, dir, format, side, op };
        child.Hidden = true;
        child.SetAction(r => Cli.Guard(() =>
        {
            var c = new IoCase(r.GetValue(format)!, r.GetValue(side)!, r.GetValue(op)!);
            Console.WriteLine(IoBench.ToJson(IoBench.Measure(c, VitConfig.Preset(r.GetValue(preset)!), r.GetValue(dir)!)));
            return 0;
        }));
        bench.Subcommands.Add(child);
    }

    static IoResult Child(IoCase c, string preset, string dir)
    {
        using var p = Cli.StartSelf(true, "bench", "io-child", "--preset", preset, "--dir", dir, "--format", c.Format, "--side", c.Side, "--op", c.Op);
        var stderr = p.StandardError.ReadToEndAsync();
        var lines = p.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        p.WaitForExit();
        var json = lines.LastOrDefault(l => l.StartsWith('{'));
        return json is not null ? IoBench.FromJson(json) : new IoResult(c, 0, 0, $"child exited {p.ExitCode}: {stderr.Result.Trim()}");
    }

}
