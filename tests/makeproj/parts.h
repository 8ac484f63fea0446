long sum_to(long n);
const char *greeting(void);
int table_entry(int i);
