// Run an ONNX model with ONNX Runtime's C++ API: Ort::Env, Ort::SessionOptions, Ort::Session,
// Ort::Value::CreateTensor and Session::Run.
//
// Usage: ort_consumer MODEL.onnx RUNS NAME=DTYPE:D0,D1,...:FILE.bin [NAME=...]
//   one argument per model input: its name, dtype (float32 or int64), shape and a file of raw
//   little-endian values (numpy's array.tofile). RUNS: calls to time after the first one.
//
// Prints one JSON line: {"ort_version": .., "api_version": .., "load_ms": .., "run_ms": ..,
// "median_ms": .., "runs": .., "outputs": {"NAME": {"dtype": .., "shape": [..], "values": [..]}}}
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Input {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<char> bytes;  // raw values, float32 or int64
};

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    shape.push_back(std::stoll(item));
  }
  return shape;
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) {
    throw std::runtime_error("cannot open " + path);
  }
  std::vector<char> bytes(static_cast<std::size_t>(file.tellg()));
  file.seekg(0);
  file.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

// NAME=DTYPE:D0,D1,...:FILE
Input parse_input(const std::string& arg) {
  const auto eq = arg.find('=');
  const auto colon1 = arg.find(':', eq + 1);
  const auto colon2 = arg.find(':', colon1 + 1);
  if (eq == std::string::npos || colon1 == std::string::npos || colon2 == std::string::npos) {
    throw std::invalid_argument("input argument must be NAME=DTYPE:D0,D1,...:FILE, got " + arg);
  }
  Input input{arg.substr(0, eq), arg.substr(eq + 1, colon1 - eq - 1),
              parse_shape(arg.substr(colon1 + 1, colon2 - colon1 - 1)),
              read_bytes(arg.substr(colon2 + 1))};
  if (input.dtype != "float32" && input.dtype != "int64") {
    throw std::invalid_argument("dtype must be float32 or int64, got " + input.dtype);
  }
  int64_t count = 1;
  for (auto d : input.shape) count *= d;
  const std::size_t itemsize = input.dtype == "float32" ? sizeof(float) : sizeof(int64_t);
  if (input.bytes.size() != static_cast<std::size_t>(count) * itemsize) {
    throw std::invalid_argument(input.name + ": file has " + std::to_string(input.bytes.size()) +
                                " bytes, shape and dtype need " + std::to_string(count * itemsize));
  }
  return input;
}

Ort::Value make_tensor(const Ort::MemoryInfo& memory, Input& input) {
  // CreateTensor wraps the caller's buffer without copying: `input` must outlive the Ort::Value.
  if (input.dtype == "float32") {
    return Ort::Value::CreateTensor<float>(
        memory, reinterpret_cast<float*>(input.bytes.data()), input.bytes.size() / sizeof(float),
        input.shape.data(), input.shape.size());
  }
  return Ort::Value::CreateTensor<int64_t>(
      memory, reinterpret_cast<int64_t*>(input.bytes.data()), input.bytes.size() / sizeof(int64_t),
      input.shape.data(), input.shape.size());
}

void write_output(std::ostringstream& json, const std::string& name, const Ort::Value& value) {
  const auto info = value.GetTensorTypeAndShapeInfo();
  const auto shape = info.GetShape();
  const std::size_t count = info.GetElementCount();
  const auto type = info.GetElementType();
  if (type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT && type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) {
    throw std::runtime_error(name + ": only float32 and int64 outputs are printed");
  }
  const bool is_float = type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  json << "\"" << name << "\": {\"dtype\": \"" << (is_float ? "float32" : "int64")
       << "\", \"shape\": [";
  for (std::size_t i = 0; i < shape.size(); ++i) json << (i ? ", " : "") << shape[i];
  json << "], \"values\": [";
  for (std::size_t i = 0; i < count; ++i) {
    json << (i ? ", " : "");
    if (is_float) {
      json << value.GetTensorData<float>()[i];
    } else {
      json << value.GetTensorData<int64_t>()[i];
    }
  }
  json << "]}";
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: " << argv[0] << " MODEL.onnx RUNS NAME=DTYPE:D0,D1,...:FILE.bin [...]\n";
    return 2;
  }
  try {
    const int runs = std::stoi(argv[2]);
    std::vector<Input> inputs;
    for (int i = 3; i < argc; ++i) inputs.push_back(parse_input(argv[i]));

    auto start = std::chrono::steady_clock::now();
    Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "ort_consumer");
    Ort::SessionOptions options;
    options.SetIntraOpNumThreads(1);  // deterministic and polite on shared machines
    options.SetInterOpNumThreads(1);
    options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
    Ort::Session session(env, argv[1], options);
    const double load_ms = ms_since(start);

    // The model's own input and output names, in its order; every input must be given.
    Ort::AllocatorWithDefaultOptions allocator;
    std::vector<std::string> input_names, output_names;
    for (std::size_t i = 0; i < session.GetInputCount(); ++i)
      input_names.push_back(session.GetInputNameAllocated(i, allocator).get());
    for (std::size_t i = 0; i < session.GetOutputCount(); ++i)
      output_names.push_back(session.GetOutputNameAllocated(i, allocator).get());

    const auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    std::vector<Ort::Value> values;
    std::vector<const char*> in_ptrs, out_ptrs;
    for (const auto& name : input_names) {
      auto found = std::find_if(inputs.begin(), inputs.end(),
                                [&](const Input& in) { return in.name == name; });
      if (found == inputs.end()) throw std::invalid_argument("missing model input " + name);
      values.push_back(make_tensor(memory, *found));
      in_ptrs.push_back(name.c_str());
    }
    if (inputs.size() != input_names.size())
      throw std::invalid_argument("got " + std::to_string(inputs.size()) + " inputs, the model has " +
                                  std::to_string(input_names.size()));
    for (const auto& name : output_names) out_ptrs.push_back(name.c_str());

    auto run = [&] {
      return session.Run(Ort::RunOptions{nullptr}, in_ptrs.data(), values.data(), values.size(),
                         out_ptrs.data(), out_ptrs.size());
    };
    start = std::chrono::steady_clock::now();
    std::vector<Ort::Value> outputs = run();
    const double run_ms = ms_since(start);
    std::vector<double> times;
    for (int i = 0; i < runs; ++i) {
      start = std::chrono::steady_clock::now();
      outputs = run();
      times.push_back(ms_since(start));
    }

    std::ostringstream json;
    json.precision(9);
    json << "{\"ort_version\": \"" << Ort::GetVersionString() << "\", \"api_version\": "
         << ORT_API_VERSION << ", \"load_ms\": " << load_ms << ", \"run_ms\": " << run_ms
         << ", \"median_ms\": " << median(times) << ", \"runs\": " << runs << ", \"outputs\": {";
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      if (i) json << ", ";
      write_output(json, output_names[i], outputs[i]);
    }
    json << "}}";
    std::cout << json.str() << std::endl;
  } catch (const Ort::Exception& error) {
    std::cerr << "onnxruntime error: " << error.what() << "\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
