using System.CommandLine;
using PeftWorkbench.Bench;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft bench io` (checkpoint load/save against TorchSharp.PyBridge, each case in a fresh `bench io-child`)
/// and `peft bench wise` (the robustness WiSE curve, reference path against the fast one).</summary>
public static class BenchIoCommand
{
    /// <summary>Adds `io`, the hidden `io-child` each of its measurements runs in, and `wise` under the existing `bench` group.</summary>
    public static void AddTo(Command bench)
    {
        var preset = new Option<string>("--preset") { Description = "Model shape.", DefaultValueFactory = _ => "vit-b16" };
        var rounds = new Option<int>("--rounds") { Description = "Rounds over all cases (medians are printed).", DefaultValueFactory = _ => 3 };
        var dir = new Option<string?>("--dir") { Description = "Folder for the model files (default: a temp folder, deleted after)." };
        var only = new Option<string?>("--only") { Description = "Only the load or only the save cases." };
        only.AcceptOnlyFromAmong("load", "save");
        var io = new Command("io", "Load and save of safetensors, .pth and npz: seconds and peak RSS growth, ours beside PyBridge's load_py/save_py, each in a fresh process.")
            { preset, rounds, dir, only };
        io.SetAction(r => Cli.Guard(() =>
            IoBench.Compare(Cli.SelfCommand(), VitConfig.Preset(r.GetValue(preset)!), r.GetValue(rounds), r.GetValue(dir), r.GetValue(only), Console.WriteLine) ? 0 : 1));
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

        var methods = new Option<string[]>("--methods") { Description = "Methods to fine-tune from the zero-shot head (comma or space separated).", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => new[] { "full", "lora" } };
        var wRounds = new Option<int>("--rounds") { Description = "Alternating rounds of plain and fast curves (medians are printed).", DefaultValueFactory = _ => 3 };
        var epochs = new Option<int>("--epochs") { Description = "Fine-tuning epochs before timing (the curve's cost does not depend on them).", DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch") { Description = "Evaluation batch size.", DefaultValueFactory = _ => 256 };
        var wise = new Command("wise", "A WiSE robustness curve (11 alphas over MNIST test and 4 shift sets): the reference path against the fast one, alternating rounds, wall and CPU seconds.")
            { methods, wRounds, epochs, batch };
        wise.SetAction(r => Cli.Guard(() => { WiseBench.Print(Cli.Split(r.GetValue(methods)), r.GetValue(wRounds), r.GetValue(epochs), r.GetValue(batch), Console.WriteLine); return 0; }));
        bench.Subcommands.Add(wise);
    }
}
