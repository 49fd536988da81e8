/* C accelerator for roost.protocol: frame parsing and XOR masking (RFC 6455 sections 5.2, 5.3).
 * roost.protocol.frames falls back to a pure-Python version when this module is absent
 * or when ROOST_NO_EXTENSIONS=1 is set. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *
apply_mask(PyObject *self, PyObject *args)
{
    Py_buffer data, mask;
    if (!PyArg_ParseTuple(args, "y*y*:apply_mask", &data, &mask)) {
        return NULL;
    }
    if (mask.len != 4) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&mask);
        PyErr_SetString(PyExc_ValueError, "mask must be exactly 4 bytes");
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&mask);
        return NULL;
    }
    const unsigned char *src = (const unsigned char *)data.buf;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
    const unsigned char *m = (const unsigned char *)mask.buf;
    Py_ssize_t n = data.len;
    Py_ssize_t i = 0;
    uint64_t m8;
    unsigned char mb[8] = {m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]};
    memcpy(&m8, mb, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t chunk;
        memcpy(&chunk, src + i, 8);
        chunk ^= m8;
        memcpy(dst + i, &chunk, 8);
    }
    for (; i < n; i++) {
        dst[i] = src[i] ^ m[i & 3];
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}


/* parse_frame(buf, pos, expect_mask, limit): one RFC 6455 frame from buf[pos:].
 *   None                   the frame is not complete yet
 *   int (1..5)             a violation: 1 mask bit wrong, 2 control frame over 125 bytes,
 *                          3 fragmented control frame, 4 64-bit length with the high bit set,
 *                          5 data frame over `limit` bytes
 *   (b0, payload, end)     the first header byte, the unmasked payload, the next position
 * The same contract as roost.protocol.frames._parse_frame_python. */
static PyObject *
parse_frame(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, limit;
    int expect_mask;
    if (!PyArg_ParseTuple(args, "y*nin:parse_frame", &view, &pos, &expect_mask, &limit)) {
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t n = view.len;
    PyObject *result = NULL;
    if (pos < 0 || n - pos < 2) {
        goto incomplete;
    }
    unsigned char b0 = buf[pos], b1 = buf[pos + 1];
    unsigned long long length = b1 & 0x7F;
    Py_ssize_t start = pos + 2;
    if (length == 126) {
        if (n - pos < 4) goto incomplete;
        length = ((unsigned long long)buf[pos + 2] << 8) | buf[pos + 3];
        start = pos + 4;
    } else if (length == 127) {
        if (n - pos < 10) goto incomplete;
        length = 0;
        for (int i = 0; i < 8; i++) length = (length << 8) | buf[pos + 2 + i];
        start = pos + 10;
        if (length >> 63) { result = PyLong_FromLong(4); goto done; }
    }
    if ((b1 & 0x80) != (expect_mask ? 0x80 : 0)) { result = PyLong_FromLong(1); goto done; }
    if (b0 & 0x08) {
        if (length > 125) { result = PyLong_FromLong(2); goto done; }
        if (!(b0 & 0x80)) { result = PyLong_FromLong(3); goto done; }
    } else if (length > (unsigned long long)(limit < 0 ? 0 : limit)) {
        result = PyLong_FromLong(5);
        goto done;
    }
    Py_ssize_t mask_len = expect_mask ? 4 : 0;
    if ((unsigned long long)(n - start - mask_len) < length || n - start < mask_len) {
        goto incomplete;
    }
    Py_ssize_t len = (Py_ssize_t)length;
    PyObject *payload = PyBytes_FromStringAndSize(NULL, len);
    if (payload == NULL) goto done;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(payload);
    const unsigned char *src = buf + start + mask_len;
    if (expect_mask) {
        const unsigned char *m = buf + start;
        unsigned char mb[8] = {m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]};
        uint64_t m8;
        memcpy(&m8, mb, 8);
        Py_ssize_t i = 0;
        for (; i + 8 <= len; i += 8) {
            uint64_t chunk;
            memcpy(&chunk, src + i, 8);
            chunk ^= m8;
            memcpy(dst + i, &chunk, 8);
        }
        for (; i < len; i++) dst[i] = src[i] ^ m[i & 3];
    } else {
        memcpy(dst, src, len);
    }
    result = Py_BuildValue("(iNn)", (int)b0, payload, start + mask_len + len);
    goto done;
incomplete:
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, mask) -> bytes\n\nXOR data with the 4-byte mask, repeated."},
    {"parse_frame", parse_frame, METH_VARARGS,
     "parse_frame(buf, pos, expect_mask, limit) -> None | int | (b0, payload, end)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "roost.protocol._speedups",
    "C accelerator for WebSocket masking.", -1, speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
