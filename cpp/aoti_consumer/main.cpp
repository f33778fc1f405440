// Load an AOTInductor package (torch._inductor.aoti_compile_and_package) and run it on one input.
//
// Usage: aoti_consumer PACKAGE.pt2 INPUT.bin D0,D1,... [RUNS]
//   INPUT.bin  raw little-endian float32 values (numpy's array.tofile), shape D0 x D1 x ...
//   RUNS       calls to time after the first one (default 0)
//
// Prints one JSON line: {"load_ms": .., "run_ms": .., "median_ms": .., "runs": .., "shape": [..],
// "values": [..]} -- run_ms is the first call, median_ms the median of the RUNS calls after it.
#include <ATen/Parallel.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    shape.push_back(std::stoll(item));
  }
  return shape;
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) {
    throw std::runtime_error("cannot open " + path);
  }
  const auto bytes = static_cast<std::size_t>(file.tellg());
  std::vector<float> values(bytes / sizeof(float));
  file.seekg(0);
  file.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(bytes));
  return values;
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
  if (argc != 4 && argc != 5) {
    std::cerr << "usage: " << argv[0] << " PACKAGE.pt2 INPUT.bin D0,D1,... [RUNS]\n";
    return 2;
  }
  try {
    at::set_num_threads(1);  // deterministic and polite on shared machines
    // The compiled model checks its inputs' dtype, shape and device only when this is set;
    // without it, a wrong shape reads past the buffer instead of raising.
    setenv("AOTI_RUNTIME_CHECK_INPUTS", "1", 0);
    const auto shape = parse_shape(argv[3]);
    const int runs = argc == 5 ? std::stoi(argv[4]) : 0;
    auto values = read_floats(argv[2]);
    int64_t expected = 1;
    for (auto d : shape) expected *= d;
    if (static_cast<int64_t>(values.size()) != expected) {
      std::cerr << "input has " << values.size() << " floats, shape needs " << expected << "\n";
      return 2;
    }
    at::Tensor input = at::from_blob(values.data(), shape, at::kFloat).clone();

    auto start = std::chrono::steady_clock::now();
    // Unpacks the .pt2 (a zip) to a temporary folder and dlopens the compiled model inside.
    torch::inductor::AOTIModelPackageLoader loader(argv[1]);
    const double load_ms = ms_since(start);

    c10::InferenceMode inference_mode;  // the C++ counterpart of torch.inference_mode()
    start = std::chrono::steady_clock::now();
    std::vector<at::Tensor> outputs = loader.run({input});
    const double run_ms = ms_since(start);
    std::vector<double> times;
    for (int i = 0; i < runs; ++i) {
      start = std::chrono::steady_clock::now();
      outputs = loader.run({input});
      times.push_back(ms_since(start));
    }
    if (outputs.empty()) {
      std::cerr << "the package returned no outputs\n";
      return 1;
    }
    const at::Tensor output = outputs[0].to(at::kFloat).contiguous();

    std::ostringstream json;
    json.precision(9);
    json << "{\"load_ms\": " << load_ms << ", \"run_ms\": " << run_ms
         << ", \"median_ms\": " << median(times) << ", \"runs\": " << runs << ", \"shape\": [";
    for (int64_t i = 0; i < output.dim(); ++i) {
      json << (i ? ", " : "") << output.size(i);
    }
    json << "], \"values\": [";
    const auto flat = output.flatten();
    const float* data = flat.data_ptr<float>();
    for (int64_t i = 0; i < flat.numel(); ++i) {
      json << (i ? ", " : "") << data[i];
    }
    json << "]}";
    std::cout << json.str() << std::endl;
  } catch (const c10::Error& error) {
    std::cerr << "libtorch error: " << error.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
