using System.Reflection;
using TorchSharp;

namespace PeftWorkbench;

/// <summary>Where the workbench looks for things, which device it computes on, and what it runs with.</summary>
public static class Workbench
{
    public static string Version =>
        typeof(Workbench).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <summary>The data cache: $PEFT_DATA, else ~/.cache/peft-workbench.</summary>
    public static string DataDir =>
        Environment.GetEnvironmentVariable("PEFT_DATA") is { Length: > 0 } d ? d
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "peft-workbench");

    /// <summary>The profile a notebook starts with: $PEFT_PROFILE when set (checked against the profile table, so a typo
    /// fails in the parameters cell, naming the value), else "default". The variable reaches a notebook however it is
    /// opened: a Jupyter server started with it, `jupyter execute`, or `peft notebooks run` (which also injects it).</summary>
    public static string Profile =>
        Environment.GetEnvironmentVariable("PEFT_PROFILE") is { Length: > 0 } name
            ? (Tuning.Profiles.Names.Contains(name) ? name
               : throw new ArgumentException($"PEFT_PROFILE='{name}' is not a profile. Known profiles: {string.Join(", ", Tuning.Profiles.Names)}."))
            : "default";

    /// <summary>The shipped backbone the mini suite fine-tunes unless told otherwise (notebooks, `peft train`, `peft sweep`):
    /// "mini-hand", the stronger one, which passed its shipping rule (issue 25: linear probe above random init on 11 of 11
    /// tasks and above "mini" on 10, zero-shot MNIST 91 %) before the findings were rerun on it.</summary>
    public const string DefaultBackbone = "mini-hand";

    /// <summary>The backbone whose stores and robustness runs carry no backbone suffix ("runs/default", not
    /// "runs/default-mini"): "mini", the default until 2026-12-07, so stores written before still read as what they hold.</summary>
    public const string UnsuffixedBackbone = "mini";

    /// <summary>The shipped backbone a notebook fine-tunes: $PEFT_BACKBONE when set (checked against the shipped checkpoints,
    /// so a typo fails in the parameters cell, naming the value), else <see cref="DefaultBackbone"/>. Each backbone keeps
    /// its own store (<see cref="Tuning.Study.DefaultStore"/>).</summary>
    public static string Backbone =>
        Environment.GetEnvironmentVariable("PEFT_BACKBONE") is { Length: > 0 } name ? Vit.VisionTransformer.RequireShipped(name) : DefaultBackbone;

    /// <summary><paramref name="path"/> as given when it exists or names a folder; a bare file name is looked for in
    /// <see cref="CheckpointDirs"/> (the first that holds it), else returned unchanged for the reader's own error.</summary>
    public static string FindCheckpoint(string path)
    {
        if (File.Exists(path) || Path.IsPathRooted(path) || path.Contains(Path.DirectorySeparatorChar)) return path;
        return CheckpointDirs.Select(dir => Path.Combine(dir, path)).FirstOrDefault(File.Exists) ?? path;
    }

    /// <summary>Checkpoint folders searched in order: $PEFT_CHECKPOINTS (':'-separated), the data cache's checkpoints/.</summary>
    public static IReadOnlyList<string> CheckpointDirs
    {
        get
        {
            var dirs = new List<string>();
            if (Environment.GetEnvironmentVariable("PEFT_CHECKPOINTS") is { Length: > 0 } env)
                dirs.AddRange(env.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
            dirs.Add(Path.Combine(DataDir, "checkpoints"));
            return dirs;
        }
    }

    /// <summary>CUDA when TorchSharp finds a CUDA build and a GPU (needs the CUDA TorchSharp package), else CPU.
    /// $PEFT_DEVICE ("cpu" or "cuda") overrides.</summary>
    public static torch.Device Device
    {
        get
        {
            var want = Environment.GetEnvironmentVariable("PEFT_DEVICE");
            if (want is { Length: > 0 }) return torch.device(want);
            return torch.cuda.is_available() ? torch.CUDA : torch.CPU;
        }
    }

    /// <summary>Rows for `peft info` and the tour notebook.</summary>
    public static IReadOnlyList<(string Key, string Value)> Info() => new List<(string, string)>
    {
        ("PeftWorkbench", Version),
        ("TorchSharp", typeof(torch).Assembly.GetName().Version?.ToString() ?? "?"),
        ("libtorch", torch.__version__),
        (".NET", Environment.Version.ToString()),
        ("OS", System.Runtime.InteropServices.RuntimeInformation.OSDescription),
        ("CPU cores", Environment.ProcessorCount.ToString()),
        ("torch threads", torch.get_num_threads().ToString()),
        ("native tuning", string.Join("; ", Training.NativeTuning.Settings)),
        ("native load", Training.TorchNatives.Status),
        ("CUDA available", torch.cuda.is_available().ToString()),
        ("device", Device.ToString()),
        ("data dir", DataDir + (Directory.Exists(DataDir) ? "" : "  (missing: run environment/setup.sh)")),
        ("checkpoint dirs", string.Join(Path.PathSeparator, CheckpointDirs)),
    };
}
