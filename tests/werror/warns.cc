// Deliberately warns (-Wunused-variable): see run.sh.
int numaheap_werror_check_cxx() {
  int unused_on_purpose = 0;
  return 1;
}
