using System.CommandLine;
using PeftWorkbench.Analysis;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft bench wise`: seconds and CPU-seconds per robustness WiSE curve, the reference path against the fast one.</summary>
public static class WiseBenchCommand
{
    /// <summary>Adds `wise` under the existing `bench` group.</summary>
    public static void AddTo(RootCommand root)
    {
        var bench = root.Subcommands.First(c => c.Name == "bench");
        var methods = new Option<string[]>("--methods") { Description = "Methods to fine-tune from the zero-shot head (comma or space separated).", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => new[] { "full", "lora" } };
        var rounds = new Option<int>("--rounds") { Description = "Alternating rounds of plain and fast curves (medians are printed).", DefaultValueFactory = _ => 3 };
        var epochs = new Option<int>("--epochs") { Description = "Fine-tuning epochs before timing (the curve's cost does not depend on them).", DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch") { Description = "Evaluation batch size.", DefaultValueFactory = _ => 256 };
        var wise = new Command("wise", "A WiSE robustness curve (11 alphas over MNIST test and 4 shift sets): the reference path against the fast one, alternating rounds, wall and CPU seconds.")
            { methods, rounds, epochs, batch };
        wise.SetAction(r => Cli.Guard(() =>
        {
            int n = r.GetValue(rounds), e = r.GetValue(epochs), b = r.GetValue(batch);
            if (n < 1 || e < 1 || b < 1) throw new ArgumentException($"--rounds, --epochs and --batch must be positive (got {n}, {e}, {b}).");
            var list = Cli.Split(r.GetValue(methods));
            Console.WriteLine($"bench wise: {string.Join(", ", list)}, {n} rounds; load average {Cli.LoadAverage()}");
            var timings = WiseBench.Run(list, n, e, b, line => Console.WriteLine("  " + line));
            Console.WriteLine($"medians (load average {Cli.LoadAverage()}):");
            foreach (var line in WiseBench.Summary(timings)) Console.WriteLine("  " + line);
            return 0;
        }));
        bench.Subcommands.Add(wise);
    }
}
