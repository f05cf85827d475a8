using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Data;

/// <summary>
/// The study's processed VTAB-1K folders: &lt;root&gt;/&lt;task&gt;/{train800,val200,train800val200,test}.txt, one
/// "relative/path label" per line, paths relative to the task folder. Images (JPEG/PNG) are decoded with
/// SkiaSharp, resized bicubically to imageSize x imageSize (the study's Resize((224, 224), bicubic)) and normalised.
/// </summary>
public sealed class VtabFolderSuite : Suite
{
    /// <summary>The 19 VTAB-1K tasks: folder name, group, classes.</summary>
    public static IReadOnlyList<(string Name, string Group, int Classes)> Known { get; } = new[]
    {
        ("cifar", "natural", 100), ("caltech101", "natural", 102), ("dtd", "natural", 47), ("oxford_flowers102", "natural", 102),
        ("oxford_iiit_pet", "natural", 37), ("svhn", "natural", 10), ("sun397", "natural", 397),
        ("patch_camelyon", "specialized", 2), ("eurosat", "specialized", 10), ("resisc45", "specialized", 45), ("diabetic_retinopathy", "specialized", 5),
        ("clevr_count", "structured", 8), ("clevr_dist", "structured", 6), ("dmlab", "structured", 6), ("kitti", "structured", 4),
        ("dsprites_loc", "structured", 16), ("dsprites_ori", "structured", 16), ("smallnorb_azi", "structured", 18), ("smallnorb_ele", "structured", 9),
    };

    public string Root { get; }
    public int ImageSize { get; }
    public Normalization Normalization { get; }
    public override string Name => $"vtab-1k ({Root})";
    public override IReadOnlyList<TaskInfo> Tasks { get; }

    public VtabFolderSuite(string root, int imageSize, Normalization normalization)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"VTAB-1K root folder not found: {root}");
        if (imageSize <= 0) throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize, "image size must be positive");
        Root = root; ImageSize = imageSize; Normalization = normalization;
        var tasks = new List<TaskInfo>();
        foreach (var dir in Directory.GetDirectories(root).OrderBy(d => d, StringComparer.Ordinal))
        {
            string name = Path.GetFileName(dir);
            if (!SplitNames.All(s => File.Exists(Path.Combine(dir, s + ".txt")))) continue;
            var known = Known.FirstOrDefault(k => k.Name == name);
            int Count(string s) => File.ReadLines(Path.Combine(dir, s + ".txt")).Count(l => l.Trim().Length > 0);
            // Many-shot: train-many.txt (the full training set), optionally with a fixed split train-many-train.txt / train-many-val.txt.
            int many = File.Exists(Path.Combine(dir, ManyShotSplit + ".txt")) ? Count(ManyShotSplit) : 0;
            tasks.Add(new TaskInfo(name, known.Group ?? "unknown", $"VTAB-1K folder {dir}", known.Classes,
                Count("train800"), Count("val200"), Count("train800val200"), Count("test"), many, Array.Empty<string>(), "VTAB-1K"));
        }
        if (tasks.Count == 0)
            throw new InvalidDataException($"{root}: no task folders with {string.Join(", ", SplitNames.Select(s => s + ".txt"))} found");
        Tasks = tasks;
    }

    /// <summary>
    /// Parses a split list. Each non-empty line is "path label" (split at the last whitespace, so paths may contain
    /// spaces). Errors name the list file and line: a missing label, a label that is not an integer or is out of
    /// range, a path outside the task folder (absolute, or climbing out with ..), an image that does not exist, a list
    /// with no images (a split of 0 images would train nothing and score 0 without complaint).
    /// </summary>
    public static List<(string Path, long Label, int Line)> ReadList(string listPath, int numClasses)
    {
        if (!File.Exists(listPath)) throw new FileNotFoundException($"VTAB-1K split list not found: {listPath}", listPath);
        var dir = Path.GetDirectoryName(Path.GetFullPath(listPath))!;
        var rows = new List<(string, long, int)>();
        int lineNo = 0;
        foreach (var raw in File.ReadLines(listPath))
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0) continue;
            int cut = line.LastIndexOfAny(new[] { ' ', '\t' });
            if (cut <= 0) throw new InvalidDataException($"{listPath}: line {lineNo}: expected 'relative/path label', got '{line}'");
            string rel = line[..cut].Trim(), lab = line[(cut + 1)..];
            if (!long.TryParse(lab, out long label)) throw new InvalidDataException($"{listPath}: line {lineNo}: label '{lab}' is not an integer");
            if (label < 0 || (numClasses > 0 && label >= numClasses))
                throw new InvalidDataException($"{listPath}: line {lineNo}: label {label} outside [0, {(numClasses > 0 ? numClasses.ToString() : "inf")})");
            string full = Path.GetFullPath(Path.Combine(dir, rel));
            if (Path.IsPathRooted(rel) || !full.StartsWith(dir + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                throw new InvalidDataException($"{listPath}: line {lineNo}: image path '{rel}' is outside the task folder {dir} (paths are relative to it)");
            if (!File.Exists(full)) throw new FileNotFoundException($"{listPath}: line {lineNo}: image not found: {full}", full);
            rows.Add((full, label, lineNo));
        }
        if (rows.Count == 0) throw new InvalidDataException($"{listPath}: no images listed (each line is 'relative/path label')");
        return rows;
    }

    /// <summary>The most pixels an image may declare. VTAB-1K's images are a few hundred pixels a side; a header
    /// declaring far more (a hostile or damaged file) is refused before a buffer that size is allocated and decoded.</summary>
    public static long MaxPixels { get; set; } = 4096L * 4096;

    /// <summary>Decodes an image file (JPEG, PNG, anything SkiaSharp reads) to RGB bytes, channel-major. Strict: a
    /// truncated or damaged file is an error (SkiaSharp would otherwise fill the missing rows and return it).</summary>
    public static (byte[] Chw, int Height, int Width) DecodeRgb(string path, string where)
    {
        SKCodec? opened;
        SKCodecResult opening;
        try { opened = SKCodec.Create(path, out opening); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new InvalidDataException($"{where}: cannot read image {path}: {e.Message}", e); }
        using var codec = opened ?? throw new InvalidDataException($"{where}: cannot decode image {path} ({opening}: not a JPEG/PNG, or corrupt)");
        int w = codec.Info.Width, h = codec.Info.Height;
        if (w <= 0 || h <= 0 || (long)w * h > MaxPixels)
            throw new InvalidDataException($"{where}: image {path} declares {w}x{h} pixels, outside 1..{MaxPixels} pixels (raise VtabFolderSuite.MaxPixels for larger images)");
        var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        var decoded = codec.GetPixels(info, bitmap.GetPixels());
        if (decoded != SKCodecResult.Success)
            throw new InvalidDataException($"{where}: image {path} does not decode completely ({decoded}: truncated or corrupt)");
        int hw = h * w;
        var px = bitmap.GetPixelSpan();
        if (px.Length < 4 * hw) throw new InvalidDataException($"{where}: image {path} decoded to {px.Length} bytes for {w}x{h}");
        var chw = new byte[3 * hw];
        for (int p = 0; p < hw; p++) { chw[p] = px[4 * p]; chw[hw + p] = px[4 * p + 1]; chw[2 * hw + p] = px[4 * p + 2]; }
        return (chw, h, w);
    }

    public override ImageSet LoadSplit(string task, string split)
    {
        var info = Info(task);
        if (!SplitNames.Contains(split) && !(split.StartsWith(ManyShotSplit) && File.Exists(Path.Combine(Root, task, split + ".txt"))))
            throw new ArgumentException($"Unknown split '{split}' for '{task}'. Splits: {string.Join(", ", SplitNames)} (and {ManyShotSplit}[-train|-val] where the folder has them).", nameof(split));
        var listPath = Path.Combine(Root, task, split + ".txt");
        int classes = info.NumClasses > 0 ? info.NumClasses : InferClasses(task);
        var rows = ReadList(listPath, classes);
        var images = torch.empty(rows.Count, 3, ImageSize, ImageSize);
        try
        {
            for (int i = 0; i < rows.Count; i++)
            {
                using var scope = torch.NewDisposeScope();
                var (chw, h, w) = DecodeRgb(rows[i].Path, $"{listPath}: line {rows[i].Line}");
                var one = new RawImages(chw, new[] { rows[i].Label }, 3, h, w, classes, rows[i].Path);
                var resized = Transforms.Resize(one, ImageSize);
                using var bytes = Transforms.ToByteTensor(resized);
                images[i] = Transforms.Normalize(bytes, Normalization)[0];
            }
        }
        catch { images.Dispose(); throw; }
        return new ImageSet(images, torch.tensor(rows.Select(r => r.Label).ToArray(), ScalarType.Int64), classes, $"{task}/{split}");
    }

    /// <summary>Whether the task folder holds a fixed many-shot split (train-many-train.txt and train-many-val.txt).</summary>
    public bool HasFixedManyShotSplit(string task) =>
        File.Exists(Path.Combine(Root, task, ManyShotSplit + "-train.txt")) && File.Exists(Path.Combine(Root, task, ManyShotSplit + "-val.txt"));

    // Unknown task: classes = 1 + the largest label in train800val200 and test.
    int InferClasses(string task)
    {
        long max = -1;
        foreach (var s in new[] { "train800val200", "test" })
            foreach (var r in ReadList(Path.Combine(Root, task, s + ".txt"), 0)) max = Math.Max(max, r.Label);
        return (int)(max + 1);
    }
}
