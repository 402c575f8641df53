// Native kernels for large STAR loops: tokenising value lines, parsing and formatting numbers.
//
// Plain C functions called through ctypes (which releases the GIL, so two threads work on two halves of a
// table at once). Every function either succeeds exactly or reports failure, and the Python side then takes
// its exact path: nothing here guesses. Numbers are parsed and formatted with std::from_chars/to_chars,
// which are correctly rounded and shortest-round-trip (the same values Python's float() and repr() give).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <system_error>
#include <vector>

namespace {

// What each byte is to the tokenizer: part of a word, a blank between words (a lone \r is a blank, as on
// the exact path), or a byte that needs the exact path (quotes and comments; \v, \f and NUL).
enum ByteClass : unsigned char { WORD = 0, BLANK = 1, SPECIAL = 2 };

struct ByteClasses {
    unsigned char of[256] = {};
    ByteClasses() {
        for (unsigned char c : {' ', '\t', '\r'}) of[c] = BLANK;
        for (unsigned char c : {'\'', '"', '#', '\v', '\f', '\0'}) of[c] = SPECIAL;
    }
};

const ByteClasses classes;

inline unsigned char byte_class(char c) { return classes.of[static_cast<unsigned char>(c)]; }

// Number of code points of a UTF-8 token, or -1 if the bytes are not valid UTF-8 (or encode NUL).
int64_t utf8_length(const unsigned char* text, int32_t size) {
    int64_t count = 0;
    for (int32_t i = 0; i < size; ++count) {
        unsigned char lead = text[i];
        int extra;
        if (lead == 0) return -1;
        if (lead < 0x80) extra = 0;
        else if ((lead & 0xE0) == 0xC0 && lead >= 0xC2) extra = 1;
        else if ((lead & 0xF0) == 0xE0) extra = 2;
        else if ((lead & 0xF8) == 0xF0 && lead <= 0xF4) extra = 3;
        else return -1;
        if (i + extra >= size && extra > 0) return -1;  // a sequence cut short by the token end
        uint32_t point = extra == 0 ? lead : (lead & (0x3F >> extra));
        for (int k = 1; k <= extra; ++k) {
            unsigned char next = text[i + k];
            if ((next & 0xC0) != 0x80) return -1;
            point = (point << 6) | (next & 0x3F);
        }
        // Overlong forms, surrogates and values beyond U+10FFFF are not UTF-8.
        if ((extra == 2 && (point < 0x800 || (point >= 0xD800 && point <= 0xDFFF))) ||
            (extra == 3 && (point < 0x10000 || point > 0x10FFFF)))
            return -1;
        i += extra + 1;
    }
    return count;
}

// Python's repr() of a finite or infinite double, written at slot (at least 32 bytes); returns its length.
// The digits are the shortest that read back to the same value; the layout is repr's: positional
// notation with at least one decimal for exponents -4 to 15, scientific with a two-digit exponent else.
int32_t python_repr(double value, char* slot) {
    if (std::isnan(value)) {
        std::memcpy(slot, "nan", 3);
        return 3;
    }
    if (std::isinf(value)) {
        const char* text = value < 0 ? "-inf" : "inf";
        std::memcpy(slot, text, std::strlen(text));
        return static_cast<int32_t>(std::strlen(text));
    }
    char scientific[40];
    auto result = std::to_chars(scientific, scientific + sizeof scientific, value, std::chars_format::scientific);
    const char* end = result.ptr;
    const char* c = scientific;
    char* out = slot;
    if (*c == '-') *out++ = *c++;
    char digits[24];
    int n_digits = 0;
    for (; *c != 'e'; ++c)
        if (*c != '.') digits[n_digits++] = *c;
    int exponent = 0;
    std::from_chars(c + 1 + (c[1] == '+'), end, exponent);
    if (exponent >= -4 && exponent < 16) {
        if (exponent < 0) {
            *out++ = '0';
            *out++ = '.';
            for (int k = 0; k < -exponent - 1; ++k) *out++ = '0';
            for (int k = 0; k < n_digits; ++k) *out++ = digits[k];
        } else {
            for (int k = 0; k <= exponent; ++k) *out++ = k < n_digits ? digits[k] : '0';
            *out++ = '.';
            if (n_digits > exponent + 1)
                for (int k = exponent + 1; k < n_digits; ++k) *out++ = digits[k];
            else
                *out++ = '0';
        }
    } else {
        *out++ = digits[0];
        if (n_digits > 1) {
            *out++ = '.';
            for (int k = 1; k < n_digits; ++k) *out++ = digits[k];
        }
        *out++ = 'e';
        *out++ = exponent < 0 ? '-' : '+';
        int magnitude = exponent < 0 ? -exponent : exponent;
        if (magnitude < 10) *out++ = '0';
        out = std::to_chars(out, slot + 32, magnitude).ptr;
    }
    return static_cast<int32_t>(out - slot);
}

// Whether a token is ASCII without NUL (written so that the compiler vectorises it: most text is ASCII).
inline bool plain_ascii(const unsigned char* text, int32_t size) {
    unsigned char high = 0, nul = 0;
    for (int32_t i = 0; i < size; ++i) {
        high |= text[i];
        nul |= text[i] == 0;
    }
    return high < 0x80 && !nul;
}

}  // namespace

extern "C" {

// Find where a run of loop value lines that starts at data[begin] ends: at the line break before the
// first line whose first non-blank byte (blanks: space, \t, \r, \v, \f) is _, # or ;, or that starts
// (after blanks) with data_ or loop_; at `size` if no line does. found[0] is the number of line breaks
// in data[begin:end); found[1] the offset of the first line break at or after split_at that lies before
// the end (-1 if none) and found[2] the number of line breaks before that one, so that a caller can cut
// the run in two at a line without counting again. Returns the end.
int64_t skg_scan_values(const char* data, int64_t begin, int64_t size, int64_t split_at, int64_t* found) {
    int64_t breaks = 0, pos = begin;
    found[1] = -1;
    found[2] = 0;
    while (pos < size) {
        const char* line_end = static_cast<const char*>(std::memchr(data + pos, '\n', size - pos));
        if (!line_end) break;
        int64_t end = line_end - data;
        int64_t next = end + 1;
        while (next < size && (data[next] == ' ' || data[next] == '\t' || data[next] == '\r' ||
                               data[next] == '\v' || data[next] == '\f'))
            ++next;
        if (next < size) {
            char lead = data[next];
            bool ends = lead == '_' || lead == '#' || lead == ';' ||
                        (size - next >= 5 && (std::memcmp(data + next, "data_", 5) == 0 ||
                                              std::memcmp(data + next, "loop_", 5) == 0));
            if (ends) {
                found[0] = breaks;
                return end;
            }
        }
        if (found[1] < 0 && end >= split_at) {
            found[1] = end;
            found[2] = breaks;
        }
        ++breaks;
        pos = end + 1;
    }
    found[0] = breaks;
    return size;
}

// Split the value lines data[begin:size) into rows of exactly `width` blank-separated tokens.
// Token j of row r goes to starts[j * column_size + r] (its byte offset in data, which is below 4 GiB)
// and lengths[...]: one
// contiguous run per column, so that parsing a column reads only its own offsets. `starts` and `lengths`
// point at the first row this call fills. Returns the number of rows, or -1 if a row has another number
// of tokens, -2 if a line is blank, -3 if there are more than max_rows, -4 if a byte needs the exact path.
int64_t skg_tokenize(const char* data, int64_t begin, int64_t size, int32_t width, int64_t max_rows,
                     int64_t column_size, uint32_t* starts, int32_t* lengths) {
    int64_t rows = 0, pos = begin;
    while (pos < size) {
        const char* line_end = static_cast<const char*>(std::memchr(data + pos, '\n', size - pos));
        int64_t stop = line_end ? line_end - data : size;
        if (rows >= max_rows) return -3;
        int32_t found = 0;
        int64_t i = pos;
        while (true) {
            while (i < stop && byte_class(data[i]) == BLANK) ++i;
            if (i >= stop) break;
            int64_t token = i;
            unsigned char kind;
            while (i < stop && (kind = byte_class(data[i])) != BLANK) {
                if (kind == SPECIAL) return -4;
                ++i;
            }
            if (found == width) return -1;
            starts[found * column_size + rows] = static_cast<uint32_t>(token);
            lengths[found * column_size + rows] = static_cast<int32_t>(i - token);
            ++found;
        }
        if (found == 0) return -2;
        if (found != width) return -1;
        ++rows;
        pos = stop + 1;
    }
    return rows;
}

// A column as int64: 0 if every token is an optionally negative decimal integer within int64.
int32_t skg_parse_int64(const char* data, const uint32_t* starts, const int32_t* lengths, int64_t rows,
                        int64_t* out) {
    for (int64_t r = 0; r < rows; ++r) {
        const char* first = data + starts[r];
        const char* last = first + lengths[r];
        auto [end, error] = std::from_chars(first, last, out[r]);
        if (error != std::errc() || end != last) return 1;
    }
    return 0;
}

// A column as float64: 0 if every token is a decimal number, inf, infinity or nan (any case, with
// an optional minus), as Python's float() reads them; 1 otherwise.
int32_t skg_parse_float64(const char* data, const uint32_t* starts, const int32_t* lengths, int64_t rows,
                          double* out) {
    for (int64_t r = 0; r < rows; ++r) {
        const char* first = data + starts[r];
        int32_t size = lengths[r];
        const char* last = first + size;
        auto [end, error] = std::from_chars(first, last, out[r], std::chars_format::general);
        if (error != std::errc() || end != last) return 1;
        // from_chars also takes "nan(chars)", which float() refuses.
        if (std::isnan(out[r]) && size != 3 + (first[0] == '-')) return 1;
    }
    return 0;
}

// The longest token of a column in code points, or -1 if a token is not valid UTF-8.
int64_t skg_max_code_points(const char* data, const uint32_t* starts, const int32_t* lengths, int64_t rows) {
    int64_t longest = 0;
    for (int64_t r = 0; r < rows; ++r) {
        const auto* text = reinterpret_cast<const unsigned char*>(data + starts[r]);
        int64_t count = plain_ascii(text, lengths[r]) ? lengths[r] : utf8_length(text, lengths[r]);
        if (count < 0) return -1;
        if (count > longest) longest = count;
    }
    return longest;
}

// A column decoded into UTF-32 rows of `chars` code points (NumPy's "U" layout, zero-filled).
void skg_fill_utf32(const char* data, const uint32_t* starts, const int32_t* lengths, int64_t rows,
                    int64_t chars, uint32_t* out) {
    for (int64_t r = 0; r < rows; ++r) {
        const auto* text = reinterpret_cast<const unsigned char*>(data + starts[r]);
        int32_t size = lengths[r];
        uint32_t* target = out + r * chars;
        int64_t n = 0;
        if (plain_ascii(text, size)) {
            for (int32_t i = 0; i < size; ++i) target[i] = text[i];
            n = size;
        } else {
            for (int32_t i = 0; i < size; ++n) {
                unsigned char lead = text[i];
                int extra = lead < 0x80 ? 0 : lead < 0xE0 ? 1 : lead < 0xF0 ? 2 : 3;
                uint32_t point = extra == 0 ? lead : (lead & (0x3F >> extra));
                for (int k = 1; k <= extra; ++k) point = (point << 6) | (text[i + k] & 0x3F);
                target[n] = point;
                i += extra + 1;
            }
        }
        std::memset(target + n, 0, static_cast<size_t>(chars - n) * sizeof(uint32_t));
    }
}

// --- writing: rows are formatted in blocks; within a block each column is right-aligned to its widest
// value. Numbers are formatted once into fixed slots, measured, then laid out: one formatting per value.

enum ColumnKind : int32_t { FLOAT64 = 0, INT64 = 1, ASCII = 2 };

constexpr int32_t kSlot = 32;  // bytes per formatted number (repr of a double is at most 24)

// The widest value of a NumPy "U" column (rows of `chars` UTF-32 code points), or -1 if a value is not
// ASCII, holds a NUL, or cannot be written bare in STAR: empty, holding a blank, starting with a quote,
// _, # or ;, or starting with a reserved word and _ (the caller then quotes it on its exact path).
int64_t skg_ascii_width(const uint32_t* values, int64_t rows, int64_t chars) {
    static const char* const reserved[] = {"data_", "loop_", "save_", "global_", "stop_"};
    int64_t longest = 0;
    for (int64_t r = 0; r < rows; ++r) {
        const uint32_t* value = values + r * chars;
        int64_t size = chars;
        while (size > 0 && value[size - 1] == 0) --size;
        if (size == 0) return -1;
        for (int64_t i = 0; i < size; ++i) {
            uint32_t point = value[i];
            if (point == 0 || point >= 0x80 || point == ' ' || (point >= '\t' && point <= '\r')) return -1;
        }
        uint32_t lead = value[0];
        if (lead == '\'' || lead == '"' || lead == '_' || lead == '#' || lead == ';') return -1;
        for (const char* word : reserved) {
            int64_t n = static_cast<int64_t>(std::strlen(word));
            bool same = size >= n;
            for (int64_t i = 0; same && i < n; ++i) same = value[i] == static_cast<unsigned char>(word[i]);
            if (same) return -1;
        }
        if (size > longest) longest = size;
    }
    return longest;
}

// Rows [first, stop) of a table in blocks of block_rows rows (counted from row 0, so `first` is a
// multiple of block_rows): within a block, each value right-aligned to the widest value of its column in
// the block, one blank between columns, "\n" after the last. kinds[c] says what values[c] points at
// (chars[c] code points per value for ASCII, already checked by skg_ascii_width). `out` holds at least
// (stop - first) * (sum over columns of kSlot, or chars[c] for ASCII, plus 1) bytes. Returns the bytes
// written. A block's numbers are formatted once, into slots small enough to stay in cache until laid out.
int64_t skg_format_rows(int32_t columns, const int32_t* kinds, const void* const* values, const int64_t* chars,
                        int64_t first, int64_t stop, int64_t block_rows, char* out) {
    // Left uninitialised: every slot read is written first.
    std::unique_ptr<char[]> slots(new char[static_cast<size_t>(block_rows * columns) * kSlot]);
    std::vector<int32_t> sizes(static_cast<size_t>(block_rows * columns));
    std::vector<int32_t> widths(static_cast<size_t>(columns));
    char* cursor = out;
    for (int64_t block = first; block < stop; block += block_rows) {
        const int64_t rows = std::min(block_rows, stop - block);
        std::fill(widths.begin(), widths.end(), 0);
        for (int64_t r = 0; r < rows; ++r) {
            for (int32_t c = 0; c < columns; ++c) {
                size_t at = static_cast<size_t>(r * columns + c);
                char* slot = slots.get() + at * kSlot;
                int32_t size;
                if (kinds[c] == FLOAT64) {
                    size = python_repr(static_cast<const double*>(values[c])[block + r], slot);
                } else if (kinds[c] == INT64) {
                    int64_t value = static_cast<const int64_t*>(values[c])[block + r];
                    size = static_cast<int32_t>(std::to_chars(slot, slot + kSlot, value).ptr - slot);
                } else {
                    const uint32_t* value = static_cast<const uint32_t*>(values[c]) + (block + r) * chars[c];
                    int64_t n = chars[c];
                    while (n > 0 && value[n - 1] == 0) --n;
                    size = static_cast<int32_t>(n);
                }
                sizes[at] = size;
                if (size > widths[c]) widths[c] = size;
            }
        }
        for (int64_t r = 0; r < rows; ++r) {
            for (int32_t c = 0; c < columns; ++c) {
                size_t at = static_cast<size_t>(r * columns + c);
                int32_t size = sizes[at];
                std::memset(cursor, ' ', widths[c] - size);
                cursor += widths[c] - size;
                if (kinds[c] == ASCII) {
                    const uint32_t* value = static_cast<const uint32_t*>(values[c]) + (block + r) * chars[c];
                    for (int32_t i = 0; i < size; ++i) *cursor++ = static_cast<char>(value[i]);
                } else {
                    std::memcpy(cursor, slots.get() + at * kSlot, size);
                    cursor += size;
                }
                *cursor++ = c + 1 == columns ? '\n' : ' ';
            }
        }
    }
    return cursor - out;
}

}  // extern "C"
