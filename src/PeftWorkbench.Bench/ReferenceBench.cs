using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftWorkbench.Peft;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Bench;

/// <summary>The outcome of running the PyTorch reference: its figures, or why there are none.</summary>
public sealed record ReferenceResult(BenchFigures? Figures, string? Problem)
{
    /// <summary>How the reference's environment was set, in words (printed under the table).</summary>
    public IReadOnlyList<string> Notes { get; init; } = Array.Empty<string>();
}

/// <summary>
/// The PyTorch side of `peft bench`: runs environment/reference/bench.py as a child process with our ViT
/// shape and our methods' default options, and reads back its JSON.
/// </summary>
public static class ReferenceBench
{
    /// <summary>Debian's python, which python3-torch installs into (a `python3` on PATH may be another one, without torch).</summary>
    public const string DefaultPython = "/usr/bin/python3";
    public const string InstallHint = "bash environment/reference/setup.sh";

    /// <summary>bench.py: the repository's copy when running inside the repository (found upwards from the
    /// program's folder), else the copy the CLI build puts next to peft.dll.</summary>
    public static string? FindScript()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "environment", "reference", "bench.py");
            if (File.Exists(candidate)) return candidate;
        }
        var copy = Path.Combine(AppContext.BaseDirectory, "reference", "bench.py");
        return File.Exists(copy) ? copy : null;
    }

    /// <summary>The ViT shape as bench.py reads it.</summary>
    public static string ConfigJson(VitConfig c)
    {
        if (c.PreNorm || !c.PatchBias || c.Activation != "gelu" || c.DropRate != 0 || c.DropPathRate != 0)
            throw new ArgumentException($"The PyTorch reference builds timm's plain ViT (exact GELU, patch bias, no pre-norm, no dropout or drop path); preset '{c.Name}' differs.");
        return new JsonObject
        {
            ["name"] = c.Name, ["image_size"] = c.ImageSize, ["patch_size"] = c.PatchSize, ["in_chans"] = c.InChans,
            ["embed_dim"] = c.EmbedDim, ["depth"] = c.Depth, ["num_heads"] = c.NumHeads, ["mlp_hidden"] = c.MlpHidden,
            ["num_classes"] = c.NumClasses, ["qkv_bias"] = c.QkvBias, ["ln_eps"] = c.LayerNormEps,
        }.ToJsonString();
    }

    /// <summary>Our default options per method (the study's keys), so the reference cannot drift from them.</summary>
    public static string OptionsJson(IEnumerable<string> methods, VitConfig c)
    {
        var all = new JsonObject();
        foreach (var id in methods.Select(m => BenchMode.Parse(m).Name).Where(m => m != "inference").Distinct())
        {
            var o = new JsonObject();
            foreach (var (key, value) in MethodRegistry.Create(id, null, c).ToHyperparameters())
                o[key] = value switch
                {
                    null => null,
                    int or long or float or double => JsonValue.Create(Convert.ToDouble(value, CultureInfo.InvariantCulture)),
                    _ => JsonValue.Create(OptionValues.Format(value)),
                };
            all[id] = o;
        }
        return all.ToJsonString();
    }

    /// <summary>Runs bench.py on its own: its rounds paired with nothing (the test's and a script's way; `peft bench`
    /// pairs each of its workloads with ours through a <see cref="ReferenceSession"/>).</summary>
    public static ReferenceResult Run(string python, string? script, VitConfig config, IReadOnlyList<string> methods,
        int batch, int steps, int rounds, int threads, Action<string>? log = null, CancellationToken cancel = default)
    {
        using var session = ReferenceSession.Start(python, script, config, methods, batch, steps, threads, log, cancel);
        for (int round = 0; round < rounds && session.Problem is null; round++)
            foreach (var name in session.Workloads) session.Time(name);
        return session.Finish();
    }

    /// <summary>bench.py's command line (serving: it times a workload when asked).</summary>
    internal static ProcessStartInfo StartInfo(string python, string script, VitConfig config, IReadOnlyList<string> methods, int batch, int steps, int threads)
    {
        var psi = new ProcessStartInfo(python)
        {
            UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        foreach (var a in new[]
        {
            script, "--serve", "--config", ConfigJson(config), "--methods", string.Join(",", methods), "--hp", OptionsJson(methods, config),
            "--batch", batch.ToString(CultureInfo.InvariantCulture), "--steps", steps.ToString(CultureInfo.InvariantCulture),
            "--threads", threads > 0 ? threads.ToString(CultureInfo.InvariantCulture) : "auto",
        }) psi.ArgumentList.Add(a);
        return psi;
    }

    /// <summary>
    /// The child's environment: the fastest setup for PyTorch that is still this machine's.
    /// OMP_WAIT_POLICY and GOMP_SPINCOUNT: whatever libtorch in our process runs under (ThreadBudget's choice or the
    /// user's), so the reference waits the same way. OPENBLAS_CORETYPE: a
    /// value forced in the environment (Haswell was, on the machines this was written on) makes OpenBLAS use
    /// older kernels than the CPU has (AVX2 instead of AVX-512: about half the matmul speed measured here),
    /// so the reference runs without it and OpenBLAS picks its kernels for this CPU, as on a plain machine.
    /// </summary>
    internal static List<string> ReferenceEnvironment(ProcessStartInfo psi)
    {
        var notes = new List<string>();
        // The policy this process runs under (ours or the user's, as libgomp read it), so both sides wait alike.
        var waits = new[] { "OMP_WAIT_POLICY", "GOMP_SPINCOUNT" }.Select(k => (k, v: NativeTuning.Getenv(k))).Where(e => e.v is { Length: > 0 }).ToList();
        foreach (var (k, v) in waits) psi.Environment[k] = v!;
        if (waits.Count > 0) notes.Add($"{string.Join(", ", waits.Select(e => $"{e.k}={e.v}"))} on both sides (this process's OpenMP wait, as the workbench chose it)");
        if (psi.Environment.TryGetValue("OPENBLAS_CORETYPE", out var core) && !string.IsNullOrEmpty(core))
        {
            psi.Environment.Remove("OPENBLAS_CORETYPE");
            notes.Add($"OPENBLAS_CORETYPE={core} was set here; the reference runs without it so that OpenBLAS uses this CPU's own kernels (faster)");
        }
        return notes;
    }

    /// <summary>Reads bench.py's JSON: figures, or its "torch is not importable" answer turned into one line saying how to install it.</summary>
    public static ReferenceResult Parse(string json)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"bench.py output is not JSON: {e.Message}"); }
        if (root is not JsonObject o) throw new InvalidDataException("bench.py output is not a JSON object.");
        if (o["error"] is JsonNode error)
            return new(null, $"PyTorch reference not run: {error.GetValue<string>()}; install it with `{(string?)o["install"] ?? InstallHint}`.");
        var rows = o["rows"] as JsonArray ?? throw new InvalidDataException("bench.py output has no \"rows\".");
        var list = rows.Select(ParseRow).ToList();
        var blas = o["blas"] as JsonObject;
        var libs = (blas?["libraries"] as JsonArray)?.Select(l => (string?)l).Where(l => l is not null).Cast<string>().ToList() ?? new();
        string? openblas = (string?)blas?["openblas"];
        string blasText = openblas is not null
            ? $"{openblas}, core {(string?)blas!["openblas_core"]}, {(int?)blas["openblas_threads"]} threads"
            : libs.Count > 0 ? string.Join(", ", libs.Select(Path.GetFileName)) : "unknown";
        var threads = o["threads"] as JsonObject;
        return new(new BenchFigures
        {
            Side = "pytorch",
            Rows = list,
            PeakRssBytes = (long?)o["peak_rss_bytes"] ?? 0,
            Version = "PyTorch " + (string?)o["torch"],
            Threads = threads is null ? null : $"{(int?)threads["train"]} torch thread(s) for training, {(int?)threads["inference"]} for inference" + MeasuredText(o["threads_measured"]),
            Blas = blasText,
            // Debian's torch on the reference netlib BLAS is about 15x slower: no fair baseline.
            FastBlas = libs.Count == 0 || openblas is not null || libs.Any(l => l.Contains("openblas") || l.Contains("mkl") || l.Contains("blis")),
        }, null);
    }

    static BenchRow ParseRow(JsonNode? row)
    {
        try
        {
            string name = (string?)row?["name"] ?? throw new InvalidDataException("a bench.py row has no \"name\".");
            return new BenchRow(name,
                (double?)row!["images_per_second"] ?? throw new InvalidDataException($"bench.py row {name} has no \"images_per_second\"."),
                (long?)row["trainable_excl_head"]);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"a bench.py row has a value of the wrong type: {row?.ToJsonString()}");
        }
    }

    static string MeasuredText(JsonNode? measured)
    {
        if (measured is not JsonObject m) return " (as asked)";
        string One(string kind) => m[kind] is JsonObject k ? $"{kind} {(double?)k["1"]:F0} img/s on 1, {(double?)k["2"]:F0} on 2" : "";
        return $" (timed first: {One("full")}; {One("inference")})";
    }
}
